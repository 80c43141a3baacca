{#- The one union point for orders: every platform's staging model, same columns. -#}
{{ union_platforms('orders', [
    'platform', 'shop_id', 'order_id', 'raw_order_status', 'raw_refund_status',
    'created_at', 'paid_at', 'shipped_at', 'finished_at', 'updated_at',
    'goods_amount', 'discount_amount', 'shipping_fee', 'paid_amount', 'currency',
    'buyer_name_masked', 'buyer_phone_masked', 'buyer_address_masked', 'buyer_key',
]) }}
