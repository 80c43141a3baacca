with source as (
    {{ latest_version(source('raw', 'jd_orders')) }}
),

lines as (
    select source.*, line.item, line.line_number
    from source
    cross join lateral jsonb_array_elements(source.payload -> 'itemInfoList')
        with ordinality as line (item, line_number)
),

renamed as (
    select
        -- ids (JD lines have no id of their own: order id + line number)
        platform,
        shop_id,
        order_id,
        line_number::integer as line_number,
        order_id || '-' || line_number as order_item_id,
        item ->> 'wareId' as product_id,
        item ->> 'skuId' as sku_id,
        item ->> 'outerSkuId' as outer_sku_id,
        item ->> 'skuName' as product_name,
        -- quantities and amounts (itemTotal is the quantity)
        (item ->> 'itemTotal')::integer as quantity,
        {{ yuan("item ->> 'jdPrice'") }} as unit_price,
        ({{ yuan("item ->> 'jdPrice'") }} * (item ->> 'itemTotal')::integer)::numeric(18, 2) as line_amount
    from lines
)

select * from renamed
