with source as (
    {{ latest_version(source('raw', 'tmall_orders')) }}
),

renamed as (
    select
        -- ids
        platform,
        shop_id,
        order_id,
        -- status (raw; mapped to standard codes in intermediate)
        payload ->> 'status' as raw_order_status,
        coalesce(
            jsonb_path_query_first(payload, '$.orders.order[*].refund_status ? (@ != "NO_REFUND")') #>> '{}',
            'NO_REFUND'
        ) as raw_refund_status,
        -- times (Beijing-time strings)
        {{ local_ts("payload ->> 'created'") }} as created_at,
        {{ local_ts("payload ->> 'pay_time'") }} as paid_at,
        {{ local_ts("payload ->> 'consign_time'") }} as shipped_at,
        {{ local_ts("payload ->> 'end_time'") }} as finished_at,
        {{ local_ts("payload ->> 'modified'") }} as updated_at,
        -- amounts (yuan strings): total_fee is goods before discounts, payment what the buyer paid
        {{ yuan("payload ->> 'total_fee'") }} as goods_amount,
        {{ yuan("payload ->> 'discount_fee'") }} as discount_amount,
        {{ yuan("payload ->> 'post_fee'") }} as shipping_fee,
        {{ yuan("payload ->> 'payment'") }} as paid_amount,
        'CNY'::text as currency,
        -- buyer (personal data: masked, or a salted hash for joins; clear text stays in raw)
        {{ mask_name("payload ->> 'receiver_name'") }} as buyer_name_masked,
        {{ mask_phone("coalesce(nullif(payload ->> 'receiver_mobile', ''), payload ->> 'receiver_phone')") }} as buyer_phone_masked,
        {{ mask_address("payload ->> 'receiver_state'", "payload ->> 'receiver_city'") }} as buyer_address_masked,
        {{ pii_hash("coalesce(nullif(payload ->> 'receiver_mobile', ''), payload ->> 'receiver_phone')") }} as buyer_key,
        -- lineage
        payload_sha256,
        extracted_at
    from source
)

select * from renamed
