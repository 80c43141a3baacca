{#- Nothing silently dropped: every raw status pair must be in the status
    rows of seeds/platform_mapping.csv. Fails with an error naming platform,
    the raw values and how many orders carry them; fix by adding seed rows.
    fct_orders keeps such orders with null codes, and the marts downstream
    still build: this test is a gate (tag:gate), run after `dbt build`, and it
    is what fails the run. -#}
{{ config(tags=["gate"], severity=gate_severity()) }}
{{ fail_on_unmapped_statuses(ref('fct_orders')) }}
{{ unmapped_statuses_sql(ref('fct_orders')) }}

-- depends_on: {{ ref('platform_status_map') }}
