{#- What each delivered order left the shop once its delivery is paid
    (issue 19): the delivery fee is a cost of the order it carried.

    received_amount: what the shop got for the order. On a platform that
    settles, its settled amount (fct_order_reconciliation), null until it is
    settled; on the shop's own channel (no platform in between), the amount
    the buyer paid, or nothing once the order is refunded (the sandbox and,
    so far, fct_refunds know only full refunds). net_after_delivery is that
    less the delivery fee. -#}
with deliveries as (
    select * from {{ ref('fct_deliveries') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

reconciliation as (
    select * from {{ ref('fct_order_reconciliation') }}
),

platforms as (
    select platform, has_settlements from {{ source('ops', 'platforms') }}
),

final as (
    select
        deliveries.order_key,
        deliveries.platform,
        deliveries.shop_id,
        deliveries.order_id,
        deliveries.delivery_service,
        deliveries.delivery_id,
        deliveries.delivery_status,
        orders.order_status_code,
        orders.refund_status_code,
        orders.paid_amount,
        coalesce(platforms.has_settlements, false) as platform_settles,
        reconciliation.reconciliation_status,
        reconciliation.expected_amount as expected_settlement_amount,
        case
            when coalesce(platforms.has_settlements, false)
                then case when reconciliation.settled_date is not null
                          then reconciliation.settled_amount end
            when orders.refund_status_code = 2 then 0
            else orders.paid_amount
        end::numeric(18, 2) as received_amount,
        deliveries.delivery_fee
    from deliveries
    inner join orders on orders.order_key = deliveries.order_key
    left join reconciliation on reconciliation.order_key = deliveries.order_key
    left join platforms on platforms.platform = deliveries.platform
)

select
    *,
    (received_amount - delivery_fee)::numeric(18, 2) as net_after_delivery
from final
