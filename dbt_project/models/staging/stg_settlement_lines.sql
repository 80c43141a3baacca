{#- Every settlement record (bill row, settle line, bill-file row) of every
    platform that settles: generated from the field rows (entity
    settlement_line) of seeds/platform_mapping.csv (see macros/field_map.sql). -#}
{{ stg_settlement_lines() }}
