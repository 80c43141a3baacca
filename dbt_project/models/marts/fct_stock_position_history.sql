{#- marts.fct_stock_position_history (issue 18): marts.stock_positions as
    every dbt build saw it, one row per merchant SKU and build (appended; the
    history of what was on hand, held, reserved and available). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['merchant_sku', 'computed_at']}],
) }}

select
    merchant_sku,
    on_hand,
    counted_at,
    held,
    reserved,
    safety_stock,
    available_to_sell,
    oversold,
    computed_at
from {{ ref('stock_positions') }}
