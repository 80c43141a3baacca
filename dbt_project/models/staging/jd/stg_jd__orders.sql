with source as (
    {{ latest_version(source('raw', 'jd_orders')) }}
),

renamed as (
    select
        -- ids
        platform,
        shop_id,
        order_id,
        -- status: the order search carries no refund state; '-' stands for "none given"
        payload ->> 'orderState' as raw_order_status,
        '-'::text as raw_refund_status,
        -- times (Beijing-time strings; 0001-01-01 / 1970-01-01 mean "no value")
        {{ local_ts("payload ->> 'orderStartTime'") }} as created_at,
        {{ local_ts("payload ->> 'paymentConfirmTime'") }} as paid_at,
        null::timestamptz as shipped_at,  -- no shipment time in jingdong.pop.order.search
        {{ local_ts("payload ->> 'orderEndTime'") }} as finished_at,
        {{ local_ts("payload ->> 'modified'") }} as updated_at,
        -- amounts (yuan strings): seller discount plus platform-funded coupons
        -- (couponType 39 JD beans, 41 JD coupons)
        {{ yuan("payload ->> 'orderTotalPrice'") }} as goods_amount,
        (
            {{ yuan("payload ->> 'sellerDiscount'") }}
            + coalesce((
                select sum({{ yuan("coupon ->> 'couponPrice'") }})
                from jsonb_array_elements(coalesce(payload -> 'couponDetailList', '[]'::jsonb)) as coupon
                where split_part(coupon ->> 'couponType', '-', 1) in ('39', '41')
            ), 0)
        )::numeric(18, 2) as discount_amount,
        {{ yuan("payload ->> 'freightPrice'") }} as shipping_fee,
        {{ yuan("payload ->> 'orderPayment'") }} as paid_amount,
        'CNY'::text as currency,
        -- buyer (personal data: masked, or a salted hash for joins; clear text stays in raw)
        {{ mask_name("payload -> 'consigneeInfo' ->> 'fullname'") }} as buyer_name_masked,
        {{ mask_phone("payload -> 'consigneeInfo' ->> 'mobile'") }} as buyer_phone_masked,
        {{ mask_address("payload -> 'consigneeInfo' ->> 'province'", "payload -> 'consigneeInfo' ->> 'city'") }} as buyer_address_masked,
        {{ pii_hash("payload -> 'consigneeInfo' ->> 'mobile'") }} as buyer_key,
        -- lineage
        payload_sha256,
        extracted_at
    from source
)

select * from renamed
