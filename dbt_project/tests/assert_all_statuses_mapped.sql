{#- Nothing silently dropped: every raw status pair must be in the
    platform_status_map seed. Fails with an error naming platform, the raw
    values and how many orders carry them; fix by adding seed rows.
    fct_orders keeps such orders with null codes, and the marts downstream
    still build: this test is a gate (tag:gate), run after `dbt build`, and it
    is what fails the run. -#}
{{ config(tags=["gate"]) }}
{{ fail_on_unmapped_statuses(ref('fct_orders')) }}
select
    platform,
    raw_order_status,
    raw_refund_status,
    count(*) as orders
from {{ ref('fct_orders') }}
where (order_status_code is null or refund_status_code is null)
    and {{ recent_rows() }}
group by platform, raw_order_status, raw_refund_status

-- depends_on: {{ ref('platform_status_map') }}
