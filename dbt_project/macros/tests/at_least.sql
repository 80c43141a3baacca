{#- Generic test: no value of the column is below `min_value` (nulls pass). -#}
{% test at_least(model, column_name, min_value) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} < {{ min_value }}
{% endtest %}
