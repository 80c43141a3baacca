{#- marts.fct_oversold_incidents (issue 18): the merchant SKUs sold beyond
    what is on hand as of the latest build - more units held and reserved by
    the channels' orders than the warehouse counted -, with when a build
    first saw it and the most it saw. An incident ends when a count or a
    cancellation covers it again; its builds stay in fct_stock_position_history.
    `orderhub sandbox truth --kind stock` counts the same units from the
    sandbox's world (tests/test_stock_sync.py). -#}
{{ config(materialized='view') }}

with history as (
    select * from {{ ref('fct_stock_position_history') }}
),

latest as (
    select distinct on (merchant_sku) *
    from history
    order by merchant_sku, computed_at desc
),

seen as (
    select merchant_sku, min(computed_at) as first_seen_at, max(oversold) as most_oversold
    from history
    where oversold > 0
    group by merchant_sku
),

final as (
    select
        latest.merchant_sku,
        latest.oversold as oversold_units,
        latest.on_hand,
        latest.held,
        latest.reserved,
        seen.first_seen_at,
        latest.computed_at as last_seen_at,
        seen.most_oversold
    from latest
    inner join seen using (merchant_sku)
    where latest.oversold > 0
)

select * from final
