{#- Every version of every order with standard status codes from the
    platform_status_map seed. An unmapped pair leaves the codes null here;
    fct_orders then fails the run naming it (macros/fail_on_unmapped_statuses.sql). -#}
with orders as (
    select * from {{ ref('stg_orders') }}
),

status_map as (
    select * from {{ ref('platform_status_map') }}
),

mapped as (
    select
        orders.*,
        status_map.order_status_code,
        status_map.refund_status_code,
        -- completed_at is when the order reached "completed"; platforms that
        -- reuse their end time for closed orders do not make it a completion.
        case when status_map.order_status_code = 40 then orders.finished_at end as completed_at
    from orders
    left join status_map
        on status_map.platform = orders.platform
        and status_map.raw_order_status = orders.raw_order_status
        and status_map.raw_refund_status = orders.raw_refund_status
)

select * from mapped
