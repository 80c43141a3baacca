{#- The status rows of seeds/platform_mapping.csv: a raw (order status,
    refund status) pair of a platform -> OrderHub's standard codes. -#}
with mapping as (
    select * from {{ ref('platform_mapping') }}
),

statuses as (
    select
        platform,
        raw_order_status,
        raw_refund_status,
        order_status_code,
        refund_status_code,
        note
    from mapping
    where kind = 'status'
)

select * from statuses
