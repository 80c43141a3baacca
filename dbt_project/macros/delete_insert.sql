{#- dbt's delete+insert (global_project .../incremental/merge.sql), with one
    change: a single-column key is deleted by `= any(array(...))`, a
    restriction PostgreSQL answers through the key's index, one probe per new
    row. dbt's `(key) in (select ...)` is a semi-join the planner may answer
    by hashing the new rows and scanning the whole table: at ten million
    settlement lines, 15 s to delete a day's 100,000 (issue 22, bench 5b).
    Composite keys (the small health and SLA tables) keep dbt's form.
    dbt_project.yml's dispatch puts this project before dbt. -#}
{% macro default__get_delete_insert_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) -%}

    {%- set dest_cols_csv = get_quoted_csv(dest_columns | map(attribute="name")) -%}

    {% if unique_key %}
        {% if unique_key is string %}
        {% set unique_key = [unique_key] %}
        {% endif %}

        {%- set unique_key_str = unique_key|join(', ') -%}

        delete from {{ target }} as DBT_INTERNAL_DEST
        {%- if unique_key | length == 1 %}
        where {{ unique_key_str }} = any(array(
            select distinct {{ unique_key_str }}
            from {{ source }} as DBT_INTERNAL_SOURCE
        ))
        {%- else %}
        where ({{ unique_key_str }}) in (
            select distinct {{ unique_key_str }}
            from {{ source }} as DBT_INTERNAL_SOURCE
        )
        {%- endif %}
        {%- if incremental_predicates %}
            {% for predicate in incremental_predicates %}
                and {{ predicate }}
            {% endfor %}
        {%- endif -%};

    {% endif %}

    insert into {{ target }} ({{ dest_cols_csv }})
    (
        select {{ dest_cols_csv }}
        from {{ source }}
    )

{%- endmacro %}
