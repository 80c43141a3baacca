{#- The one union point: the same columns from every platform's staging
    model, in one order, so a missing or extra column fails loudly. -#}
{% macro union_platforms(model_suffix, columns) -%}
    {%- for platform in var('platforms') %}
    select {{ columns | join(', ') }} from {{ ref('stg_' ~ platform ~ '__' ~ model_suffix) }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{%- endmacro %}
