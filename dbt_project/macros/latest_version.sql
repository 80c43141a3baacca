{#- Raw keeps every version of an order; staging reads the latest one:
    newest modified time, then the latest extraction, then the payload hash
    as a final deterministic tie-break. -#}
{% macro latest_version(source_relation) -%}
    select *
    from (
        select
            src.*,
            row_number() over (
                partition by src.shop_id, src.order_id
                order by src.modified_at desc, src.extracted_at desc, src.payload_sha256 desc
            ) as version_rank
        from {{ source_relation }} as src
    ) as ranked
    where version_rank = 1
{%- endmacro %}
