{#- The one union point for order lines (every version's lines). -#}
{{ union_platforms('order_items',
    ['platform', 'shop_id', 'order_id', 'line_number']
    + standard_column_names('order_item')
    + ['payload_sha256', 'extracted_at']) }}
