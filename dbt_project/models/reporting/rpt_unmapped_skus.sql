{#- Platform SKUs that map to no merchant SKU (issue 18): their lines are in
    fct_order_items with merchant_sku null, and their units are in no stock
    position. Map each by its outer id (seeds/merchant_skus.csv) or a row of
    seeds/sku_mapping.csv. -#}
with unmapped as (
    select * from {{ ref('fct_order_items') }} where merchant_sku is null
),

final as (
    select
        platform,
        shop_id,
        sku_id,
        outer_sku_id,
        max(product_name) as product_name,
        count(*) as order_lines,
        sum(quantity) as units,
        max(landed_at) as last_landed_at
    from unmapped
    group by platform, shop_id, sku_id, outer_sku_id
)

select * from final
