{#- Generated from seeds/platform_field_map.csv (see macros/field_map.sql):
    map a field for this platform by adding a row there, not by editing here. -#}
{{ stg_orders('jd') }}
