{#- Whether a gate test (tag:gate) raises its named error now. `dbt test`
    and a `dbt build` by hand: yes. A DAG's build (ORDERHUB_GATES=deferred,
    orderhub.orchestration.build_marts) runs the gates inside the build at
    severity warn, so a failing gate holds nothing back, and runs them
    again on their own (`dbt test --select tag:gate`, raising) only when one
    warned: one dbt invocation per DAG run when every gate passes. -#}
{% macro gate_raises() %}
    {{ return(execute and (flags.WHICH == 'test' or (flags.WHICH == 'build'
              and env_var('ORDERHUB_GATES', 'raise') != 'deferred'))) }}
{% endmacro %}

{% macro gate_severity() %}
    {{ return('warn' if env_var('ORDERHUB_GATES', 'raise') == 'deferred' else 'error') }}
{% endmacro %}
