{#- Nothing silently dropped: any raw status pair in `relation` that the
    platform_status_map seed lacks stops `dbt build` / `dbt test` with an
    error naming platform, values and order counts, and saying which seed
    to edit. Called by tests/assert_all_statuses_mapped.sql. -#}
{% macro fail_on_unmapped_statuses(relation) %}
    {% if execute and flags.WHICH in ('build', 'test') %}
        {% set rows = run_query(
            "select platform, raw_order_status, raw_refund_status, count(*) as orders"
            ~ " from " ~ relation
            ~ " where (order_status_code is null or refund_status_code is null)"
            ~ " and " ~ recent_rows()
            ~ " group by 1, 2, 3 order by 1, 2, 3") %}
        {% if rows and rows.rows | length > 0 %}
            {% set found = [] %}
            {% for row in rows.rows %}
                {% do found.append(row[0] ~ " order status '" ~ row[1] ~ "' with refund status '"
                                   ~ row[2] ~ "' (" ~ row[3] ~ " orders)") %}
            {% endfor %}
            {{ exceptions.raise_compiler_error(
                "Unmapped platform statuses: " ~ found | join("; ")
                ~ ". Add rows to seeds/platform_status_map.csv.") }}
        {% endif %}
    {% endif %}
{% endmacro %}
