{#- The columns of a standardized order, from the latest version of each
    order (`latest_version`): fct_orders (the hourly, tested table) and
    live_orders (the same columns, computed when read) share them. -#}
{#- buyer_key: live_orders, a view BI reads without the hash salt, takes it
    from fct_orders (the last build) instead of hashing when read. -#}
{% macro order_columns(buyer_key='buyer_key') -%}
        {{ surrogate_key(['platform', 'shop_id', 'order_id']) }} as order_key,
        platform,
        shop_id,
        order_id,
        order_status_code::smallint as order_status_code,
        refund_status_code::smallint as refund_status_code,
        raw_order_status,
        raw_refund_status,
        created_at,
        (created_at at time zone 'Asia/Shanghai')::date as order_date,
        paid_at,
        shipped_at,
        completed_at,
        updated_at,
        goods_amount,
        discount_amount,
        merchant_discount_amount,
        platform_discount_amount,
        influencer_discount_amount,
        payment_discount_amount,
        shipping_fee,
        paid_amount,
        currency,
        buyer_name_masked,
        buyer_phone_masked,
        buyer_address_masked,
        {{ buyer_key }} as buyer_key,
        payload_sha256,
        extracted_at as landed_at,
        {{ mapping_hash() }} as mapping_hash
{%- endmacro %}
