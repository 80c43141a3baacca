{#- Raw keeps every version of an order; the marts keep the latest: newest
    platform modified time, then the latest extraction, then the payload hash
    as a final deterministic tie-break. `relation` is a relation or CTE name. -#}
{% macro latest_version(relation) -%}
    select *
    from (
        select
            src.*,
            row_number() over (
                partition by src.platform, src.shop_id, src.order_id
                order by src.source_modified_at desc, src.extracted_at desc, src.payload_sha256 desc
            ) as version_rank
        from {{ relation }} as src
    ) as ranked
    where version_rank = 1
{%- endmacro %}
