{#- One row per order the reconciliation judges: expected settlement (from
    the books and the contract terms: int_order_expected_settlement), what
    the platform settled, the difference, its category and the action the
    rules give (docs/reconciliation.md).

    The reconciled range of a shop is the span of settlement days its ledger
    holds (ops.extraction_windows, entity settlements, ok windows): an order
    is judged when it is due in that range (completion date + settle_days of
    seeds/platforms.csv) or has a settlement line in it. Categories, in the
    order they are tested:

      lost_order        lines for an order the books do not have (when the
                        order history reaches recon_order_history_days back)
      prior_period      lines for an order due before the range
      unsettled         due, no line, and the grace day has been reconciled
      refund_timing     refunded in the books, the refund line not yet posted
      cross_day         amounts agree, paid out on another day than due
      unbooked_fee      the difference is exactly a fee the books lack
      unbooked_subsidy  the difference is exactly a subsidy the books lack
      rounding          |difference| within recon_rules' rounding bound
      unexplained       anything else

    Status: matched, difference, pending (due on the range's last day, or its
    completion not yet synced) or awaiting_order (lines whose order may
    predate the synced order history). Overrides (ops.recon_overrides) are
    applied on top: the computed columns never change, resolution_* add to them.

    Incremental (issue 22): a build judges again only the orders whose
    judgement can have changed since the last one (macros/reconciliation.sql,
    recon_candidates): books or lines landed since the watermark (judged_at,
    minus the lookback), an override since it, the orders still open (pending,
    awaiting_order), and the orders due or with a line in the days the range
    gained; every order of a shop whose range's first day moved. A changed
    rule, grace or history setting, contract term or mapping (mapping_hash)
    judges everything again. A candidate no longer in scope is deleted.
    tests/test_reconciliation.py proves a week of daily builds equal to a full
    refresh. -#}
{{ config(
    materialized='incremental',
    unique_key='order_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['order_key'], 'unique': true}, {'columns': ['judged_at']},
             {'columns': ['platform', 'shop_id', 'range_end_day']},
             {'columns': ['reconciliation_date']}],
    pre_hook="{{ recon_candidates() }}",
    post_hook=["{{ recon_open_index() }}", "{{ recon_drop_out_of_scope() }}", "analyze {{ this }}"],
) }}
{%- set incremental = is_incremental() and not mapping_changed(current=recon_inputs_hash()) %}

with rules as (
    select * from {{ ref('recon_rules') }}
),

rounding as (
    select abs_tolerance as bound from rules where category = 'rounding'
),

coverage as (
    select * from {{ ref('int_settlement_coverage') }}
),

order_history as (
    select platform, shop_id, min(window_start) as synced_from
    from {{ ref('stg_ops__extraction_windows') }}
    where entity = 'orders'
    group by 1, 2
),

-- One row per reconciled shop: its range and how far back its orders are
-- synced (one join per order below, not two).
shop_ranges as (
    select coverage.*, order_history.synced_from
    from coverage
    left join order_history
        on order_history.platform = coverage.platform and order_history.shop_id = coverage.shop_id
),

-- Each order's expected payout, kept with the orders (hourly, incremental).
books as (
    select books.*
    from {{ ref('int_order_expected_settlement') }} as books
    {%- if incremental %}
    where books.order_key = any(array(select order_key from recon_candidates))
    {%- endif %}
),

-- The range test on `settle_date + 0`, not on the column: on the column,
-- PostgreSQL answers the join with a nested loop that scans the lines once per
-- shop through the settle_date index (six passes over a million lines, 1.3 s
-- against 0.5 s for one pass and a hash join; issue 22, 5a). The daily run
-- reaches its lines by order_key.
lines as (
    select lines.*
    from {{ ref('fct_settlement_lines') }} as lines
    inner join coverage
        on coverage.platform = lines.platform and coverage.shop_id = lines.shop_id
        and lines.settle_date + 0 >= coverage.first_day and lines.settle_date + 0 < coverage.end_day
    {%- if incremental %}
    where lines.order_key = any(array(select order_key from recon_candidates))
    {%- endif %}
),

-- Grouped by the order's identity as well as its key (order_key is a hash of
-- the three): cheaper than any_value() of each, as the key alone decides the group.
settled as (
    select
        order_key,
        platform,
        shop_id,
        order_id,
        sum(settle_amount) as settled_amount,
        sum(other_fee_amount) as other_fee_amount,
        sum(platform_subsidy_amount + influencer_subsidy_amount) as subsidy_settled,
        bool_or(line_kind = 'refund') as has_refund_line,
        min(settle_date) filter (where line_kind = 'payout') as payout_date,
        min(settle_date) as first_settle_date,
        min(settled_at) as first_settled_at,
        count(*) as settlement_lines
    from lines
    group by order_key, platform, shop_id, order_id
),

-- In scope: every order with a line in the range, and every order due in it.
-- One full join (order_key decides platform, shop and order id).
joined as (
    select
        coalesce(settled.order_key, books.order_key) as order_key,
        coalesce(settled.platform, books.platform) as platform,
        coalesce(settled.shop_id, books.shop_id) as shop_id,
        coalesce(settled.order_id, books.order_id) as order_id,
        books.order_key is not null as in_books,
        books.due_date,
        books.is_refunded,
        books.subsidy_expected,
        books.expected_amount,
        settled.order_key is not null as has_lines,
        coalesce(settled.settled_amount, 0) as settled_amount,
        coalesce(settled.other_fee_amount, 0) as other_fee_amount,
        coalesce(settled.subsidy_settled, 0) as subsidy_settled,
        coalesce(settled.has_refund_line, false) as has_refund_line,
        settled.payout_date,
        settled.first_settle_date,
        settled.first_settled_at,
        coalesce(settled.settlement_lines, 0) as settlement_lines
    from settled
    full join books on books.order_key = settled.order_key
),

ranged as (
    select
        joined.*,
        shop_ranges.first_day,
        shop_ranges.end_day,
        shop_ranges.synced_from
    from joined
    left join shop_ranges
        on shop_ranges.platform = joined.platform and shop_ranges.shop_id = joined.shop_id
    where joined.has_lines
        or (joined.due_date >= shop_ranges.first_day and joined.due_date < shop_ranges.end_day)
),

categorized as (
    select
        ranged.*,
        settled_amount - coalesce(expected_amount, 0) as difference_amount,
        case
            when not in_books then
                case when synced_from <= first_settled_at - interval '{{ var("recon_order_history_days") }} days'
                     then 'lost_order' end
            when due_date is null then null
            when due_date < first_day then 'prior_period'
            when due_date >= end_day then null
            when not has_lines then
                case when due_date < end_day - {{ var('recon_grace_days') }} then 'unsettled' end
            when is_refunded and settled_amount <> expected_amount and not has_refund_line
                then 'refund_timing'
            when settled_amount = expected_amount then
                case when coalesce(payout_date, due_date) <> due_date then 'cross_day' end
            when other_fee_amount <> 0 and settled_amount - expected_amount = -other_fee_amount
                then 'unbooked_fee'
            when subsidy_settled > subsidy_expected
                and settled_amount - expected_amount = subsidy_settled - subsidy_expected
                then 'unbooked_subsidy'
            when abs(settled_amount - expected_amount) <= (select bound from rounding) then 'rounding'
            else 'unexplained'
        end as difference_category
    from ranged
    -- keeps PostgreSQL from inlining the category rules into every
    -- expression that reads them: computed once per order
    offset 0
),

statused as (
    select
        categorized.*,
        case
            when difference_category is not null then 'difference'
            when not in_books then 'awaiting_order'
            when due_date is null or due_date >= end_day or not has_lines then 'pending'
            else 'matched'
        end as reconciliation_status
    from categorized
),

overrides as (
    select *
    from (
        select
            overrides.*,
            row_number() over (
                partition by platform, shop_id, order_id, category
                order by resolved_at desc, override_id desc
            ) as override_rank
        from {{ source('ops', 'recon_overrides') }} as overrides
    ) as ranked
    where override_rank = 1
),

final as (
    select
        statused.order_key,
        statused.platform,
        statused.shop_id,
        statused.order_id,
        statused.reconciliation_status,
        statused.difference_category,
        statused.due_date,
        coalesce(statused.payout_date, statused.first_settle_date) as settled_date,
        coalesce(statused.payout_date, statused.first_settle_date, statused.due_date) as reconciliation_date,
        case when statused.in_books and statused.difference_category is distinct from 'prior_period'
             then statused.expected_amount end::numeric(18, 2) as expected_amount,
        statused.settled_amount::numeric(18, 2) as settled_amount,
        case when statused.reconciliation_status = 'difference'
             then case when statused.difference_category in ('prior_period', 'lost_order')
                       then statused.settled_amount else statused.difference_amount end
             else 0 end::numeric(18, 2) as difference_amount,
        statused.settlement_lines,
        statused.is_refunded,
        case
            when statused.reconciliation_status <> 'difference' then 'none'
            when abs(statused.difference_amount) <= rules.abs_tolerance
                or abs(statused.difference_amount) <= rules.rel_tolerance * abs(statused.expected_amount)
                then rules.action_within_tolerance
            else rules.action_over_tolerance
        end as action,
        overrides.resolution,
        overrides.reason as resolution_reason,
        overrides.resolved_by,
        overrides.resolved_at,
        -- what it was judged against: the shop's reconciled range, when, and
        -- the fingerprint of the rules, terms and mappings
        statused.first_day as range_first_day,
        statused.end_day as range_end_day,
        now() as judged_at,
        {{ recon_inputs_hash() }} as mapping_hash
    from statused
    left join rules on rules.category = statused.difference_category
    left join overrides
        on overrides.platform = statused.platform and overrides.shop_id = statused.shop_id
        and overrides.order_id = statused.order_id
        and overrides.category = statused.difference_category
)

select * from final
