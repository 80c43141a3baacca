{#- The field rows of seeds/platform_mapping.csv: where each standard field
    sits in each platform's payload. Staging is generated from this view
    (macros/field_map.sql); edit the seed, not this. -#}
with mapping as (
    select * from {{ ref('platform_mapping') }}
),

fields as (
    select
        platform,
        entity,
        standard_field,
        source_path,
        unit,
        aggregate,
        default_value,
        coalesce(required, false) as required,
        note
    from mapping
    where kind = 'field'
)

select * from fields
