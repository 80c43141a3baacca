{{ config(materialized='view') }}

-- Order health per platform × shop × hour (the hour an order version was
-- modified): sync latency of the live versions (a history sync's versions are
-- counted apart: their "latency" is the age of the history), completeness
-- against the platforms' own counts,
-- field completeness and open ledger windows. A view: always current, no
-- cost per run. An hour filter on it does not narrow what it reads (the hour
-- is computed, and the full join hides it): the report reads a few hours of
-- it; the sync_latency alert reads int_order_version_latency instead.
with versions as (
    select * from {{ ref('int_order_version_latency') }}
),

latency as (
    select
        platform,
        shop_id,
        hour_start,
        count(distinct order_id) as orders_landed,
        count(*) as versions_landed,
        count(*) filter (where sync_mode = 'backfill') as versions_backfilled,
        percentile_cont(0.5) within group (order by latency_seconds)
            filter (where sync_mode = 'live') as latency_p50_seconds,
        percentile_cont(0.95) within group (order by latency_seconds)
            filter (where sync_mode = 'live') as latency_p95_seconds,
        max(latency_seconds) filter (where sync_mode = 'live') as latency_max_seconds,
        -- push intake (issue 17): what push delivered first, what only the poll found
        count(*) filter (where intake = 'push') as versions_pushed,
        count(distinct order_id) filter (where intake = 'push') as orders_pushed,
        percentile_cont(0.5) within group (order by latency_seconds)
            filter (where intake = 'push') as push_latency_p50_seconds,
        percentile_cont(0.95) within group (order by latency_seconds)
            filter (where intake = 'push') as push_latency_p95_seconds,
        max(latency_seconds) filter (where intake = 'push') as push_latency_max_seconds,
        percentile_cont(0.95) within group (order by latency_seconds)
            filter (where intake = 'poll' and sync_mode = 'live') as poll_latency_p95_seconds
    from versions
    group by 1, 2, 3
),

ledger as (
    select
        platform,
        shop_id,
        date_trunc('hour', window_start) as hour_start,
        sum(api_reported_count) as api_reported_count,
        sum(orders_landed) as ledger_orders_landed,
        count(*) filter (where is_open) as open_windows
    from {{ ref('stg_ops__extraction_windows') }}
    where entity = 'orders'
    group by 1, 2, 3
),

fields as (
    select
        platform,
        shop_id,
        date_trunc('hour', updated_at) as hour_start,
        avg((
            (created_at is not null)::int + (updated_at is not null)::int
            + (raw_order_status is not null)::int + (goods_amount is not null)::int
            + (discount_amount is not null)::int + (shipping_fee is not null)::int
            + (paid_amount is not null)::int + (order_status_code is not null)::int
        ) / 8.0) as field_completeness_rate
    from {{ ref('fct_orders') }}
    group by 1, 2, 3
),

final as (
    select
        coalesce(latency.platform, ledger.platform) as platform,
        coalesce(latency.shop_id, ledger.shop_id) as shop_id,
        coalesce(latency.hour_start, ledger.hour_start) as hour_start,
        coalesce(latency.orders_landed, 0) as orders_landed,
        coalesce(latency.versions_landed, 0) as versions_landed,
        coalesce(latency.versions_backfilled, 0) as versions_backfilled,
        round(latency.latency_p50_seconds::numeric, 1) as latency_p50_seconds,
        round(latency.latency_p95_seconds::numeric, 1) as latency_p95_seconds,
        round(latency.latency_max_seconds::numeric, 1) as latency_max_seconds,
        ledger.api_reported_count,
        ledger.ledger_orders_landed,
        round(ledger.ledger_orders_landed::numeric / nullif(ledger.api_reported_count, 0), 4)
            as completeness_rate,
        round(fields.field_completeness_rate, 4) as field_completeness_rate,
        -- the day's rate (matched / judged orders) of the shop's reconciliation
        recon.consistency_rate as reconciliation_consistency_rate,
        coalesce(ledger.open_windows, 0) as open_windows,
        coalesce(latency.versions_pushed, 0) as versions_pushed,
        coalesce(latency.orders_pushed, 0) as orders_pushed,
        coalesce(latency.orders_landed - latency.orders_pushed, 0) as orders_poll_only,
        round(latency.push_latency_p50_seconds::numeric, 1) as push_latency_p50_seconds,
        round(latency.push_latency_p95_seconds::numeric, 1) as push_latency_p95_seconds,
        round(latency.push_latency_max_seconds::numeric, 1) as push_latency_max_seconds,
        round(latency.poll_latency_p95_seconds::numeric, 1) as poll_latency_p95_seconds
    from latency
    full outer join ledger
        on ledger.platform = latency.platform
        and ledger.shop_id = latency.shop_id
        and ledger.hour_start = latency.hour_start
    left join fields
        on fields.platform = coalesce(latency.platform, ledger.platform)
        and fields.shop_id = coalesce(latency.shop_id, ledger.shop_id)
        and fields.hour_start = coalesce(latency.hour_start, ledger.hour_start)
    left join {{ ref('rpt_reconciliation_daily') }} as recon
        on recon.platform = coalesce(latency.platform, ledger.platform)
        and recon.shop_id = coalesce(latency.shop_id, ledger.shop_id)
        and recon.day = (coalesce(latency.hour_start, ledger.hour_start) at time zone 'Asia/Shanghai')::date
)

select * from final
