{#- Nothing silently dropped: after fct_orders is built, any raw
    status pair missing from the platform_status_map seed stops the run with
    an error that names platform, values and order counts, and says which
    seed rows to add. (tests/assert_all_statuses_mapped.sql checks the same
    for `dbt test`.) -#}
{% macro fail_on_unmapped_statuses() %}
    {% if execute %}
        {% set rows = run_query(
            "select platform, raw_order_status, raw_refund_status, count(*) as orders"
            ~ " from " ~ this
            ~ " where order_status_code is null or refund_status_code is null"
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
