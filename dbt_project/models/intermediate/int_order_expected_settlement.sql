{#- What each order should settle for, from the books: the one place the
    expected payout is computed (docs/reconciliation.md). fct_money_events
    lists these components as ledger rows; fct_order_reconciliation compares
    expected_amount with what the platform paid.

    Components (yuan, from the shop's view), from fct_orders and the contract
    terms in seeds/platforms.csv: the buyer's payment, the subsidies the
    platform owes for platform- and influencer-funded discounts, commission
    (on the payment less postage) and the service fee (on the payment). An
    order never paid expects nothing; a refunded one nets to zero (the
    refund and the reversals of subsidies and fees). Built on the order mart,
    so it sits after it; a view: it costs nothing until read. -#}
{{ config(tags=['reconciliation']) }}

with orders as (
    select * from {{ ref('fct_orders') }}
),

terms as (
    select * from {{ ref('platforms') }}
),

components as (
    select
        orders.order_key,
        orders.platform,
        orders.shop_id,
        orders.order_id,
        orders.paid_at,
        orders.completed_at,
        orders.updated_at,
        orders.paid_amount,
        orders.shipping_fee,
        orders.merchant_discount_amount,
        orders.platform_discount_amount,
        orders.influencer_discount_amount,
        orders.payment_discount_amount,
        (orders.completed_at at time zone 'Asia/Shanghai')::date + terms.settle_days as due_date,
        orders.refund_status_code = 2 as is_refunded,
        orders.paid_at is not null as is_paid,
        round(terms.commission_rate * (orders.paid_amount - coalesce(orders.shipping_fee, 0)), 2)
            as commission_expected,
        round(terms.service_fee_rate * orders.paid_amount, 2) as service_fee_expected,
        coalesce(orders.platform_discount_amount, 0) as platform_subsidy_expected,
        coalesce(orders.influencer_discount_amount, 0) as influencer_subsidy_expected
    from orders
    inner join terms on terms.platform = orders.platform
),

final as (
    select
        components.*,
        case when is_paid then platform_subsidy_expected + influencer_subsidy_expected else 0 end
            as subsidy_expected,
        case
            when not is_paid or is_refunded then 0
            else coalesce(paid_amount, 0) + platform_subsidy_expected + influencer_subsidy_expected
                - coalesce(commission_expected, 0) - coalesce(service_fee_expected, 0)
        end::numeric(18, 2) as expected_amount
    from components
)

select * from final
