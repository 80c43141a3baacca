{#- Generated from seeds/platform_field_map.csv (see macros/field_map.sql). -#}
{{ stg_order_items('tmall') }}
