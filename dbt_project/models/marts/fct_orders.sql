with orders as (
    select * from {{ ref('int_orders_status_mapped') }}
),

final as (
    select
        {{ surrogate_key(['platform', 'shop_id', 'order_id']) }} as order_key,
        platform,
        shop_id,
        order_id,
        order_status_code::smallint as order_status_code,
        refund_status_code::smallint as refund_status_code,
        raw_order_status,
        raw_refund_status,
        created_at,
        paid_at,
        shipped_at,
        completed_at,
        updated_at,
        goods_amount,
        discount_amount,
        shipping_fee,
        paid_amount,
        currency,
        buyer_name_masked,
        buyer_phone_masked,
        buyer_address_masked,
        buyer_key
    from orders
)

select * from final
