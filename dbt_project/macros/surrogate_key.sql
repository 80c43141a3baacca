{#- md5 of the parts joined by '|'; nulls become '' so a key is never null. -#}
{% macro surrogate_key(columns) -%}
    md5(concat_ws('|', {% for column in columns %}coalesce(cast({{ column }} as text), ''){% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}
