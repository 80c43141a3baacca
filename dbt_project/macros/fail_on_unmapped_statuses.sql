{#- Nothing silently dropped: the one definition, in dbt, of "an unmapped
    status": a raw (order, refund) status pair of `relation` that the status
    rows of seeds/platform_mapping.csv lack (its codes are null), with the
    orders carrying it, among the recent rows an hourly run tests (Python's
    twin, for alerts and GX: orderhub.mapping.UNMAPPED_STATUS). -#}
{% macro unmapped_statuses_sql(relation) -%}
    select platform, raw_order_status, raw_refund_status, count(*) as orders
    from {{ relation }}
    where (order_status_code is null or refund_status_code is null)
        and {{ recent_rows() }}
    group by platform, raw_order_status, raw_refund_status
{%- endmacro %}

{#- Any such pair stops `dbt build` / `dbt test` with an error naming
    platform, values and order counts, and saying which seed to edit. Called
    by tests/assert_all_statuses_mapped.sql. -#}
{% macro fail_on_unmapped_statuses(relation) %}
    {% if gate_raises() %}
        {% set rows = run_query(unmapped_statuses_sql(relation) ~ " order by 1, 2, 3") %}
        {% if rows and rows.rows | length > 0 %}
            {% set found = [] %}
            {% for row in rows.rows %}
                {% do found.append(row[0] ~ " order status '" ~ row[1] ~ "' with refund status '"
                                   ~ row[2] ~ "' (" ~ row[3] ~ " orders)") %}
            {% endfor %}
            {{ exceptions.raise_compiler_error(
                "Unmapped platform statuses: " ~ found | join("; ")
                ~ ". Add rows to seeds/platform_mapping.csv (kind status).") }}
        {% endif %}
    {% endif %}
{% endmacro %}
