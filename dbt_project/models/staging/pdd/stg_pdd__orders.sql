with source as (
    {{ latest_version(source('raw', 'pdd_orders')) }}
),

renamed as (
    select
        -- ids
        platform,
        shop_id,
        order_id,
        -- status: order_status (1 awaiting shipment, 2 shipped, 3 received) with refund_status
        payload ->> 'order_status' as raw_order_status,
        payload ->> 'refund_status' as raw_refund_status,
        -- times (Beijing-time strings, "" when absent)
        {{ local_ts("payload ->> 'created_time'") }} as created_at,
        {{ local_ts("payload ->> 'pay_time'") }} as paid_at,
        {{ local_ts("payload ->> 'shipping_time'") }} as shipped_at,
        {{ local_ts("payload ->> 'receive_time'") }} as finished_at,
        {{ local_ts("payload ->> 'updated_at'") }} as updated_at,
        -- amounts (yuan as JSON numbers: read as text, cast to numeric, exact)
        {{ yuan("payload ->> 'goods_amount'") }} as goods_amount,
        {{ yuan("payload ->> 'discount_amount'") }} as discount_amount,
        {{ yuan("payload ->> 'postage'") }} as shipping_fee,
        {{ yuan("payload ->> 'pay_amount'") }} as paid_amount,
        'CNY'::text as currency,
        -- buyer (personal data: masked, or a salted hash for joins; clear text stays in raw)
        {{ mask_name("payload ->> 'receiver_name'") }} as buyer_name_masked,
        {{ mask_phone("payload ->> 'receiver_phone'") }} as buyer_phone_masked,
        {{ mask_address("payload ->> 'province'", "payload ->> 'city'") }} as buyer_address_masked,
        {{ pii_hash("payload ->> 'receiver_phone'") }} as buyer_key,
        -- lineage
        payload_sha256,
        extracted_at
    from source
)

select * from renamed
