{#- Every movement of money, one row each, traceable to platform, shop, order
    and (where the platform gives it) settlement line and order line.

    source = 'books': what OrderHub's own order data implies - the buyer's
    payment, postage and discounts by funder (informational: already inside
    the payment), the subsidies the platform owes for platform- and
    influencer-funded discounts, the commission and service fee the contract
    terms (seeds/platforms.csv) deduct, and on a refund their reversal.
    source = 'settlement': what the platforms booked - each record's
    components, and the settlement payout (its signed total).

    in_settlement marks the rows whose sum is the settlement: per order, the
    books' rows sum to the expected payout, the settlement rows to the actual
    one (fct_order_reconciliation). Amounts are signed from the shop's view.

    The books' components come from int_order_expected_settlement, the same
    model the reconciliation reads, so the ledger and the reconciliation's
    expected payout cannot disagree (tests/assert_money_events_sum_to_expected.sql).
    A view: reading it by order, day or shop computes only those rows, and
    the daily reconciliation does not pay for ~10 rows per order. Its tests in
    a DAG run read the rows landed recently (landed_at, through the books'
    and the lines' landed_at indexes). -#}
{{ config(materialized='view') }}

with books_fees as (
    select * from {{ ref('int_order_expected_settlement') }}
    where is_paid
),

books as (
    select
        order_key, platform, shop_id, order_id,
        null::text as order_item_id,
        null::text as settlement_line_id,
        'books'::text as source,
        event.event_type,
        event.occurred_at,
        event.amount,
        event.in_settlement,
        landed_at
    from books_fees
    cross join lateral (
        values
            ('buyer_payment', paid_at, paid_amount, true),
            ('postage', paid_at, shipping_fee, false),
            ('discount_merchant', paid_at, -merchant_discount_amount, false),
            ('discount_platform', paid_at, -platform_discount_amount, false),
            ('discount_influencer', paid_at, -influencer_discount_amount, false),
            ('discount_payment_channel', paid_at, -payment_discount_amount, false),
            ('platform_subsidy', paid_at, platform_subsidy_expected, true),
            ('influencer_subsidy', paid_at, influencer_subsidy_expected, true),
            ('commission', completed_at, -commission_expected, true),
            ('service_fee', completed_at, -service_fee_expected, true),
            ('refund', case when is_refunded then updated_at end,
                case when is_refunded then -paid_amount end, true),
            ('subsidy_reversal', case when is_refunded then updated_at end,
                case when is_refunded then -(platform_subsidy_expected + influencer_subsidy_expected) end, true),
            ('fee_reversal', case when is_refunded then updated_at end,
                case when is_refunded then commission_expected + service_fee_expected end, true)
    ) as event (event_type, occurred_at, amount, in_settlement)
    where event.amount is not null and event.amount <> 0
),

settlement as (
    select
        order_key, platform, shop_id, order_id,
        order_item_id,
        settlement_line_id,
        'settlement'::text as source,
        event.event_type,
        settled_at as occurred_at,
        event.amount,
        event.in_settlement,
        landed_at
    from {{ ref('fct_settlement_lines') }}
    cross join lateral (
        values
            ('buyer_payment', gross_amount, false),
            ('platform_subsidy', platform_subsidy_amount, false),
            ('influencer_subsidy', influencer_subsidy_amount, false),
            ('commission', -commission_amount, false),
            ('service_fee', -service_fee_amount, false),
            ('other_fee', -other_fee_amount, false),
            ('refund', -refund_amount, false),
            ('settlement_payout', settle_amount, true)
    ) as event (event_type, amount, in_settlement)
    where event.amount <> 0
),

unioned as (
    select * from books
    union all
    select * from settlement
),

final as (
    select
        {{ surrogate_key(['source', 'event_type', 'platform', 'shop_id', 'order_id', 'settlement_line_id']) }} as money_event_key,
        order_key,
        platform,
        shop_id,
        order_id,
        order_item_id,
        settlement_line_id,
        source,
        event_type,
        occurred_at,
        amount::numeric(18, 2) as amount,
        in_settlement,
        -- when the order version (books) or the settlement record behind it landed
        landed_at
    from unioned
)

select * from final
