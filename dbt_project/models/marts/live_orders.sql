{#- marts.live_orders (issue 17): fct_orders' columns for every order with a
    version landed in the last `live_horizon_hours` (wall time), at its
    latest landed version - push or poll, whichever landed it. A view over
    raw through the same staging and mapping macros as fct_orders, so an
    order `orderhub stream` lands is here as soon as its transaction
    commits, without waiting for the hourly dbt build. fct_orders stays the
    tested table of record; docs/push.md says when to read which. Its
    buyer_key is fct_orders' (see `built` below). -#}
{{ config(materialized='view') }}

with latest as (
    select * from {{ ref('int_live_order_versions') }}
),

-- buyer_key is a salted hash; the salt is a setting of dbt's sessions only
-- (macros/pii.sql), so a view read by BI cannot compute it: it comes from the
-- last build of fct_orders (null for an order no build has seen yet).
built as (
    select platform, shop_id, order_id, buyer_key from {{ ref('fct_orders') }}
)

select
    {{ order_columns(buyer_key='built.buyer_key') }}
from latest
left join built using (platform, shop_id, order_id)
