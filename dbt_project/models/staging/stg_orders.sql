{#- Every version of every order, every platform: generated from the field
    rows of seeds/platform_mapping.csv (see macros/field_map.sql). Map a field
    or a platform by adding rows there, not by editing here. -#}
{{ stg_orders() }}
