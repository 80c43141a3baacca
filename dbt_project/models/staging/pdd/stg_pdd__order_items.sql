with source as (
    {{ latest_version(source('raw', 'pdd_orders')) }}
),

lines as (
    select source.*, line.item, line.line_number
    from source
    cross join lateral jsonb_array_elements(source.payload -> 'item_list')
        with ordinality as line (item, line_number)
),

renamed as (
    select
        -- ids (PDD lines have no id of their own: order sn + line number)
        platform,
        shop_id,
        order_id,
        line_number::integer as line_number,
        order_id || '-' || line_number as order_item_id,
        item ->> 'goods_id' as product_id,
        item ->> 'sku_id' as sku_id,
        item ->> 'outer_id' as outer_sku_id,
        item ->> 'goods_name' as product_name,
        -- quantities and amounts (yuan numbers)
        (item ->> 'goods_count')::integer as quantity,
        {{ yuan("item ->> 'goods_price'") }} as unit_price,
        ({{ yuan("item ->> 'goods_price'") }} * (item ->> 'goods_count')::integer)::numeric(18, 2) as line_amount
    from lines
)

select * from renamed
