{#- marts.stock_positions (issue 18): per merchant SKU, now, what may still
    be sold:

        available_to_sell = on hand (the latest count of every warehouse)
                          - held (units of unpaid orders, on platforms that
                            take stock at creation: ops.platforms.stock_reduced_on)
                          - reserved (units of paid orders not yet shipped, every channel)
                          - safety stock (seeds/merchant_skus.csv)

    Open orders are read live: the latest landed version of every order
    landed in the last `live_horizon_hours` (int_live_order_versions, a view
    over raw, so a pushed order counts as soon as `orderhub stream` commits
    it), and, for older ones, fct_orders. A SKU no warehouse has counted has
    no on-hand, no available units and no oversold units (null: unknown, not
    zero). A view: computed when read. -#}
{{ config(materialized='view') }}

with counts as (
    select distinct on (warehouse_id, merchant_sku)
        warehouse_id, merchant_sku, counted_at, on_hand
    from {{ ref('stg_stock_on_hand') }}
    order by warehouse_id, merchant_sku, counted_at desc
),

on_hand as (
    select merchant_sku, sum(on_hand) as on_hand, max(counted_at) as counted_at
    from counts
    group by merchant_sku
),

live as (
    select platform, shop_id, order_id, payload_sha256, order_status_code
    from {{ ref('int_live_order_versions') }}
),

-- Orders that may hold or reserve units: awaiting payment (10) or paid and
-- not shipped (20), at their latest version.
open_orders as (
    select * from live where order_status_code in (10, 20)
    union all
    select built.platform, built.shop_id, built.order_id, built.payload_sha256,
           built.order_status_code
    from {{ ref('fct_orders') }} as built
    where built.order_status_code in (10, 20)
        and not exists (select 1 from live
                        where live.platform = built.platform and live.shop_id = built.shop_id
                            and live.order_id = built.order_id)
),

open_lines as (
    {{ merchant_sku_lines('open_orders') }}
),

committed as (
    select
        open_lines.merchant_sku,
        coalesce(sum(quantity) filter (where order_status_code = 10
                                       and platforms.stock_reduced_on = 'created'), 0) as held,
        coalesce(sum(quantity) filter (where order_status_code = 20), 0) as reserved
    from open_lines
    inner join {{ source('ops', 'platforms') }} as platforms
        on platforms.platform = open_lines.platform
    where open_lines.merchant_sku is not null
    group by open_lines.merchant_sku
),

final as (
    select
        skus.merchant_sku,
        skus.title,
        on_hand.on_hand::integer as on_hand,
        on_hand.counted_at,
        coalesce(committed.held, 0)::integer as held,
        coalesce(committed.reserved, 0)::integer as reserved,
        skus.safety_stock,
        greatest(0, on_hand.on_hand - coalesce(committed.held, 0)
                    - coalesce(committed.reserved, 0) - skus.safety_stock)::integer
            as available_to_sell,
        -- more held and reserved than on hand: units already sold twice
        greatest(0, coalesce(committed.held, 0) + coalesce(committed.reserved, 0)
                    - on_hand.on_hand)::integer as oversold,
        now() as computed_at
    from {{ ref('merchant_skus') }} as skus
    left join on_hand using (merchant_sku)
    left join committed using (merchant_sku)
)

select * from final
