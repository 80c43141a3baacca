with source as (
    {{ latest_version(source('raw', 'douyin_orders')) }}
),

lines as (
    select source.*, line.item, line.line_number
    from source
    cross join lateral jsonb_array_elements(source.payload -> 'sku_order_list')
        with ordinality as line (item, line_number)
),

renamed as (
    select
        -- ids (each sku order has its own id)
        platform,
        shop_id,
        order_id,
        line_number::integer as line_number,
        item ->> 'order_id' as order_item_id,
        item ->> 'product_id' as product_id,
        item ->> 'sku_id' as sku_id,
        item ->> 'out_sku_id' as outer_sku_id,
        item ->> 'product_name' as product_name,
        -- quantities and amounts (integer fen)
        (item ->> 'item_num')::integer as quantity,
        ({{ fen_to_yuan("item ->> 'origin_amount'") }} / (item ->> 'item_num')::integer)::numeric(18, 2) as unit_price,
        {{ fen_to_yuan("item ->> 'origin_amount'") }} as line_amount
    from lines
)

select * from renamed
