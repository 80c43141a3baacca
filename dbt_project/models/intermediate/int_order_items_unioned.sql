{#- The one union point for order lines. -#}
{{ union_platforms('order_items', [
    'platform', 'shop_id', 'order_id', 'line_number', 'order_item_id', 'product_id',
    'sku_id', 'outer_sku_id', 'product_name', 'quantity', 'unit_price', 'line_amount',
]) }}
