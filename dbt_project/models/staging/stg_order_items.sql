{#- Every line of every order version, every platform: generated from the
    field rows of seeds/platform_mapping.csv (see macros/field_map.sql). -#}
{{ stg_order_items() }}
