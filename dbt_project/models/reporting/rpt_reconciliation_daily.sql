{#- Per platform, shop and day of the reconciled range: what was settled,
    what of it matched, the differences by category (count and amount) and
    the consistency rate (matched orders / judged orders).

    Two views of a day, both kept: the settlement lines booked that day, split
    by their order's outcome (settled_amount = matched_settled_amount + the
    category settled amounts + pending_settled_amount, to the cent:
    tests/assert_reconciliation_ties_out.sql), and the orders reconciled that
    day (payout day, else due day) with their differences. -#}
{{ config(tags=['reporting', 'reconciliation']) }}
{%- set categories = var('recon_categories') %}
with reconciliation as (
    select * from {{ ref('fct_order_reconciliation') }}
),

lines_by_outcome as (
    select
        lines.platform,
        lines.shop_id,
        lines.settle_date as day,
        count(*) as settlement_lines,
        sum(lines.settle_amount) filter (where r.reconciliation_status = 'matched') as matched_settled_amount,
        {%- for category in categories %}
        sum(lines.settle_amount) filter (where r.difference_category = '{{ category }}') as {{ category }}_settled_amount,
        {%- endfor %}
        sum(lines.settle_amount) filter (where r.reconciliation_status in ('pending', 'awaiting_order'))
            as pending_settled_amount
    from {{ ref('fct_settlement_lines') }} as lines
    left join reconciliation as r on r.order_key = lines.order_key
    group by 1, 2, 3
),

settled as (
    -- straight from the lines, no join: the identity's independent side
    select platform, shop_id, settle_date as day, sum(settle_amount) as settled_amount
    from {{ ref('fct_settlement_lines') }}
    group by 1, 2, 3
),

orders as (
    select
        platform,
        shop_id,
        reconciliation_date as day,
        count(*) filter (where reconciliation_status = 'matched') as matched_orders,
        coalesce(sum(settled_amount) filter (where reconciliation_status = 'matched'), 0) as matched_amount,
        count(*) filter (where reconciliation_status = 'difference') as difference_orders,
        coalesce(sum(difference_amount), 0) as difference_amount,
        {%- for category in categories %}
        count(*) filter (where difference_category = '{{ category }}') as {{ category }}_count,
        coalesce(sum(difference_amount) filter (where difference_category = '{{ category }}'), 0)
            as {{ category }}_difference,
        {%- endfor %}
        count(*) filter (where reconciliation_status in ('pending', 'awaiting_order')) as pending_orders,
        count(*) filter (where action = 'manual_review' and resolution is null) as review_queue_orders
    from reconciliation
    group by 1, 2, 3
),

days as (
    select platform, shop_id, day from settled
    union
    select platform, shop_id, day from orders
),

final as (
    select
        days.platform,
        days.shop_id,
        days.day,
        coalesce(lines_by_outcome.settlement_lines, 0) as settlement_lines,
        coalesce(settled.settled_amount, 0)::numeric(18, 2) as settled_amount,
        coalesce(lines_by_outcome.matched_settled_amount, 0)::numeric(18, 2) as matched_settled_amount,
        {%- for category in categories %}
        coalesce(lines_by_outcome.{{ category }}_settled_amount, 0)::numeric(18, 2) as {{ category }}_settled_amount,
        {%- endfor %}
        coalesce(lines_by_outcome.pending_settled_amount, 0)::numeric(18, 2) as pending_settled_amount,
        -- matched + every category + pending: equals settled_amount on a reconciled day
        (coalesce(lines_by_outcome.matched_settled_amount, 0)
            {%- for category in categories %} + coalesce(lines_by_outcome.{{ category }}_settled_amount, 0){% endfor %}
            + coalesce(lines_by_outcome.pending_settled_amount, 0))::numeric(18, 2) as accounted_amount,
        coalesce(orders.matched_orders, 0) as matched_orders,
        coalesce(orders.matched_amount, 0)::numeric(18, 2) as matched_amount,
        coalesce(orders.difference_orders, 0) as difference_orders,
        coalesce(orders.difference_amount, 0)::numeric(18, 2) as difference_amount,
        {%- for category in categories %}
        coalesce(orders.{{ category }}_count, 0) as {{ category }}_count,
        coalesce(orders.{{ category }}_difference, 0)::numeric(18, 2) as {{ category }}_difference,
        {%- endfor %}
        coalesce(orders.pending_orders, 0) as pending_orders,
        coalesce(orders.review_queue_orders, 0) as review_queue_orders,
        (orders.matched_orders::numeric
            / nullif(orders.matched_orders + orders.difference_orders, 0))::numeric(7, 6) as consistency_rate
    from days
    left join lines_by_outcome using (platform, shop_id, day)
    left join settled using (platform, shop_id, day)
    left join orders using (platform, shop_id, day)
)

select * from final
