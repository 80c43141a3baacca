with source as (
    {{ latest_version(source('raw', 'tmall_orders')) }}
),

lines as (
    select source.*, line.item, line.line_number
    from source
    cross join lateral jsonb_array_elements(source.payload -> 'orders' -> 'order')
        with ordinality as line (item, line_number)
),

renamed as (
    select
        -- ids
        platform,
        shop_id,
        order_id,
        line_number::integer as line_number,
        coalesce(item ->> 'oid_str', item ->> 'oid') as order_item_id,
        item ->> 'num_iid' as product_id,
        item ->> 'sku_id' as sku_id,
        item ->> 'outer_sku_id' as outer_sku_id,
        item ->> 'title' as product_name,
        -- quantities and amounts (yuan strings)
        (item ->> 'num')::integer as quantity,
        {{ yuan("item ->> 'price'") }} as unit_price,
        {{ yuan("item ->> 'total_fee'") }} as line_amount
    from lines
)

select * from renamed
