{#- marts.stock_offers (issue 18): what every channel offers of every SKU it
    lists, as its listing API said at the latest read, with the merchant SKU
    (null: a listing the SKU mapping does not know). A view. -#}
{{ config(materialized='view') }}

with latest as (
    select distinct on (platform, shop_id, sku_id) *
    from {{ ref('stg_stock_listings') }}
    order by platform, shop_id, sku_id, listed_at desc
),

final as (
    select
        latest.platform,
        latest.shop_id,
        latest.product_id,
        latest.sku_id,
        latest.outer_sku_id,
        {{ merchant_sku() }} as merchant_sku,
        latest.product_name,
        latest.offered,
        latest.listed_at
    from latest
    {{ merchant_sku_joins('latest') }}
)

select * from final
