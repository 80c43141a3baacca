{#- The one union point for settlement records: every platform's staging
    model, the standard settlement_line fields of seeds/standard_fields.csv. -#}
{{ union_platforms('settlement_lines',
    ['platform', 'shop_id', 'order_id']
    + standard_column_names('settlement_line')
    + ['currency', 'payload_sha256', 'extracted_at']) }}
