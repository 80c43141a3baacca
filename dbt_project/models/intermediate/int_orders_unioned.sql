{#- The one union point for orders: every platform's staging model (every
    version of every order), the same columns: the standard fields of
    seeds/standard_fields.csv with personal data masked. -#}
{{ union_platforms('orders',
    ['platform', 'shop_id', 'order_id']
    + standard_column_names('order')
    + ['currency', 'source_modified_at', 'platform_fetched_at', 'payload_sha256', 'extracted_at']) }}
