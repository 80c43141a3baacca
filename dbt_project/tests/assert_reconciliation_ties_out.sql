-- Per platform, shop and day, the settled total equals the matched amount
-- plus every category's amount plus what is still pending (accounted_amount),
-- to the cent: no settlement line is dropped or counted twice between the
-- lines and the per-order reconciliation. Days outside the reconciled range
-- are skipped (their lines are not judged yet).
--
-- Every row is checked through the daily report (rpt_reconciliation_daily).
-- A DAG run (ORDERHUB_DBT_TEST_SCOPE=recent) checks the days from the first
-- its new lines or its judged orders touch, with the report's sums computed
-- for those days only (the report is a view over all of history; a day
-- filter does not reach through its outer joins).
{{ config(tags=['reconciliation']) }}
-- depends_on: {{ ref('fct_settlement_lines') }}, {{ ref('fct_order_reconciliation') }}
{%- set categories = var('recon_categories') %}
with coverage as (
    select * from {{ ref('int_settlement_coverage') }}
),
{%- if execute and test_scope_is_recent() %}
{#- min(x + 0): the min of an indexed column is otherwise read by walking that
    index from its start past the whole history to the recent rows -#}
{%- set from_day = run_query("select coalesce(least((select min(settle_date + 0) from "
    ~ ref('fct_settlement_lines') ~ " where " ~ recent_rows('landed_at')
    ~ "), (select min(reconciliation_date + 0) from " ~ ref('fct_order_reconciliation')
    ~ " where " ~ recent_judged() ~ "))::text, 'infinity')").rows[0][0] %}

lines as (
    select * from {{ ref('fct_settlement_lines') }}
    where settle_date >= '{{ from_day }}'::date
),

daily as (
    select
        lines.platform,
        lines.shop_id,
        lines.settle_date as day,
        sum(lines.settle_amount) as settled_amount,
        coalesce(sum(lines.settle_amount) filter (
            where r.reconciliation_status in ('matched', 'pending', 'awaiting_order')
                or r.difference_category in (
                    {%- for category in categories %}'{{ category }}'{{ ', ' if not loop.last }}{% endfor %})
        ), 0) as accounted_amount
    from lines
    -- each line's order looked up by key (offset 0 keeps it a lookup: as a
    -- join, PostgreSQL hashes the whole judgement for a day's lines)
    left join lateral (
        select judged.reconciliation_status, judged.difference_category
        from {{ ref('fct_order_reconciliation') }} as judged
        where judged.order_key = lines.order_key
        offset 0
    ) as r on true
    group by 1, 2, 3
)
{%- else %}

daily as (
    select * from {{ ref('rpt_reconciliation_daily') }}
)
{%- endif %}

select daily.platform, daily.shop_id, daily.day, daily.settled_amount, daily.accounted_amount
from daily
inner join coverage using (platform, shop_id)
where daily.day >= coverage.first_day and daily.day < coverage.end_day
    and daily.settled_amount <> daily.accounted_amount
