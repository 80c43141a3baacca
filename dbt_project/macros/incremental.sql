{#- Incremental marts (docs/model.md, "Incremental marts").

    A mart row is rebuilt when its order landed a new version since the
    mart's watermark (minus var('incremental_lookback_hours')), when its
    status is still unmapped, or when the mapping seeds changed since it was
    built (mapping_hash). Otherwise it is left alone, so an hourly run costs
    what the new hour costs, not what history costs. -#}

{#- A fingerprint of every mapping seed: a changed seed rebuilds the rows. -#}
{% macro mapping_hash() -%}
    (
        select md5(string_agg(part, '|' order by part))
        from (
            select 'status:' || t::text as part from {{ ref('platform_status_map') }} as t
            union all
            select 'field:' || t::text from {{ ref('platform_field_map') }} as t
            union all
            select 'standard:' || t::text from {{ ref('standard_fields') }} as t
        ) as parts
    )
{%- endmacro %}

{#- The lower bound of extracted_at that an incremental run re-reads. -#}
{% macro incremental_since(column='landed_at') -%}
    (
        select coalesce(max({{ column }}), '-infinity'::timestamptz)
               - interval '{{ var("incremental_lookback_hours") }} hours'
        from {{ this }}
    )
{%- endmacro %}
