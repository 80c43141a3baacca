{#- What each shop listed (raw.stock_listings): one row per SKU per read of
    the platform's listing API. -#}
with listings as (
    select * from {{ source('raw', 'stock_listings') }}
),

final as (
    select
        platform,
        shop_id,
        product_id,
        sku_id,
        outer_id as outer_sku_id,
        title as product_name,
        quantity as offered,
        listed_at,
        extracted_at as landed_at
    from listings
)

select * from final
