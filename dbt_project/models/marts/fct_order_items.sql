with items as (
    select * from {{ ref('int_order_items_unioned') }}
),

final as (
    select
        {{ surrogate_key(['platform', 'shop_id', 'order_item_id']) }} as order_item_key,
        {{ surrogate_key(['platform', 'shop_id', 'order_id']) }} as order_key,
        platform,
        shop_id,
        order_id,
        order_item_id,
        line_number,
        product_id,
        sku_id,
        outer_sku_id,
        product_name,
        quantity,
        unit_price,
        line_amount
    from items
)

select * from final
