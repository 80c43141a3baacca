{{ config(materialized='view') }}

-- One row per order with a refund in progress or done, as the order APIs
-- show it. Refund amounts and reasons live in the platforms' after-sales
-- APIs, which OrderHub does not extract yet; the order's paid amount is the
-- ceiling (the sandbox refunds in full).
with orders as (
    select * from {{ ref('fct_orders') }}
    where refund_status_code > 0
),

final as (
    select
        order_key as refund_key,
        order_key,
        platform,
        shop_id,
        order_id,
        refund_status_code,
        raw_refund_status,
        case when completed_at is not null or order_status_code = 40 then 'after_sale'
             else 'before_shipment' end as refund_stage,
        paid_amount as order_paid_amount,
        updated_at,
        landed_at
    from orders
)

select * from final
