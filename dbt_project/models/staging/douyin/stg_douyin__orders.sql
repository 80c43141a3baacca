with source as (
    {{ latest_version(source('raw', 'douyin_orders')) }}
),

renamed as (
    select
        -- ids
        platform,
        shop_id,
        order_id,
        -- status: order_status with the sku orders' after-sale refund_status
        payload ->> 'order_status' as raw_order_status,
        coalesce(
            jsonb_path_query_first(payload, '$.sku_order_list[*].after_sale_info.refund_status ? (@ != 0)') #>> '{}',
            '0'
        ) as raw_refund_status,
        -- times (Unix seconds, 0 when absent)
        {{ unix_ts("payload ->> 'create_time'") }} as created_at,
        {{ unix_ts("payload ->> 'pay_time'") }} as paid_at,
        {{ unix_ts("payload ->> 'ship_time'") }} as shipped_at,
        {{ unix_ts("payload ->> 'finish_time'") }} as finished_at,
        {{ unix_ts("payload ->> 'update_time'") }} as updated_at,
        -- amounts (integer fen): promotion_amount = shop + platform + influencer
        {{ fen_to_yuan("payload ->> 'order_amount'") }} as goods_amount,
        {{ fen_to_yuan("payload ->> 'promotion_amount'") }} as discount_amount,
        {{ fen_to_yuan("payload ->> 'post_amount'") }} as shipping_fee,
        {{ fen_to_yuan("payload ->> 'pay_amount'") }} as paid_amount,
        'CNY'::text as currency,
        -- buyer (personal data: masked, or a salted hash for joins; clear text stays in raw)
        {{ mask_name("payload ->> 'post_receiver'") }} as buyer_name_masked,
        {{ mask_phone("payload ->> 'post_tel'") }} as buyer_phone_masked,
        {{ mask_address("payload -> 'post_addr' -> 'province' ->> 'name'", "payload -> 'post_addr' -> 'city' ->> 'name'") }} as buyer_address_masked,
        {{ pii_hash("payload ->> 'post_tel'") }} as buyer_key,
        -- lineage
        payload_sha256,
        extracted_at
    from source
)

select * from renamed
