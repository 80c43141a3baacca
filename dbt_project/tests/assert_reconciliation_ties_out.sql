-- Per platform, shop and day, the settled total equals the matched amount
-- plus every category's amount plus what is still pending (accounted_amount),
-- to the cent: no settlement line is dropped or counted twice between the
-- lines and the per-order reconciliation. Days outside the reconciled range
-- are skipped (their lines are not judged yet).
{{ config(tags=['reconciliation']) }}
with daily as (
    select * from {{ ref('rpt_reconciliation_daily') }}
),

coverage as (
    select * from {{ ref('int_settlement_coverage') }}
)

select daily.platform, daily.shop_id, daily.day, daily.settled_amount, daily.accounted_amount
from daily
inner join coverage using (platform, shop_id)
where daily.day >= coverage.first_day and daily.day < coverage.end_day
    and daily.settled_amount <> daily.accounted_amount
