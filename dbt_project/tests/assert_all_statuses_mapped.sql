{#- Nothing silently dropped: every raw status pair must be in the
    platform_status_map seed. A failure lists platform, the raw values and
    how many orders carry them; fix by adding seed rows. -#}
select
    platform,
    raw_order_status,
    raw_refund_status,
    count(*) as orders
from {{ ref('fct_orders') }}
where order_status_code is null or refund_status_code is null
group by platform, raw_order_status, raw_refund_status
