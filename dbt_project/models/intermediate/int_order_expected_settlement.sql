{#- What each order should settle for, from the books: the one place the
    expected payout is computed (docs/reconciliation.md). fct_money_events
    lists these components as ledger rows; fct_order_reconciliation compares
    expected_amount with what the platform paid.

    Components (yuan, from the shop's view), from fct_orders and the contract
    terms in seeds/platforms.csv: the buyer's payment, the subsidies the
    platform owes for platform- and influencer-funded discounts, commission
    (on the payment less postage) and the service fee (on the payment). An
    order never paid expects nothing; a refunded one nets to zero (the
    refund and the reversals of subsidies and fees).

    Kept with the orders, incrementally: an hourly run recomputes the orders
    fct_orders rebuilt (a new version landed: landed_at), so the daily
    reconciliation reads each order's expected payout instead of recomputing
    all of history's. A change of the contract terms, or a rebuild of
    fct_orders for a changed mapping (its mapping_hash), recomputes every
    row: mapping_hash here fingerprints both (macros/incremental.sql). -#}
{{ config(
    materialized='incremental',
    unique_key='order_key',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[{'columns': ['order_key'], 'unique': true}, {'columns': ['landed_at']},
             {'columns': ['due_date']}],
) }}

{%- set inputs_hash -%}
    md5(
        (select string_agg(terms::text, '|' order by terms::text) from {{ ref('platform_terms') }} as terms)
        || coalesce((select mapping_hash from {{ ref('fct_orders') }} limit 1), '')
    )
{%- endset %}

with orders as (
    select * from {{ ref('fct_orders') }}
    {% if is_incremental() and not mapping_changed(current=inputs_hash) -%}
    where landed_at > {{ incremental_since() }}
    {%- endif %}
),

terms as (
    select * from {{ ref('platform_terms') }}
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
        orders.landed_at,
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
        end::numeric(18, 2) as expected_amount,
        {{ inputs_hash }} as mapping_hash
    from components
)

select * from final
