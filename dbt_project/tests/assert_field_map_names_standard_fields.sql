{#- Every platform_field_map row names a standard field of its entity
    (a typo would otherwise map nothing, silently). -#}
select map.platform, map.entity, map.standard_field
from {{ ref('platform_field_map') }} as map
left join {{ ref('standard_fields') }} as fields
    on fields.entity = map.entity and fields.standard_field = map.standard_field
where fields.standard_field is null
