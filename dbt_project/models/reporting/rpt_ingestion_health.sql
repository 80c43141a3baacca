{#- Order health per platform × shop × hour (the hour an order version was
    modified): sync latency of the live versions (a history sync's versions are
    counted apart: their "latency" is the age of the history), completeness
    against the platforms' own counts, field completeness, open ledger
    windows and the day's reconciliation consistency.

    A table kept by hour (issue 22), so reading a day costs a day. A build
    aggregates again only the shop-hours something touched since its
    watermark (built_at, minus the lookback):
      * every hour holding a version of an order that landed a version since
        (its new hour gains the version; in fct_orders the order leaves the
        hour of its previous latest version);
      * the hours of the ledger windows attempted since (last_attempt_at);
      * every hour of the shop-days whose orders were judged since
        (fct_order_reconciliation.judged_at: the day's consistency rate).
    The sync_latency alert reads int_order_version_latency, filtered by
    source_modified_at (it reaches the raw modified_at index). -#}
{{ config(
    materialized='incremental',
    unique_key=['platform', 'shop_id', 'hour_start'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['hour_start']}, {'columns': ['built_at']}],
) }}
{%- set incremental = is_incremental() %}
-- depends_on: {{ ref('stg_orders') }}

{% if incremental %}
{%- set since = incremental_since('built_at') %}
{#- The earliest hour a build can touch, looked up first and written as a
    literal (macros/incremental.sql, incremental_since): every version of an
    order landed since, the windows attempted since, the days judged since. -#}
{%- set bound_sql -%}
    select coalesce(date_trunc('hour', least(
        -- each landed order's versions looked up by raw's (platform, shop_id,
        -- order_id) index, never a scan of the history (+ interval '0': not
        -- by walking the modified_at index from the oldest version)
        (select min(history.modified_at)
         from (select distinct platform, shop_id, order_id from {{ source('raw', 'orders') }}
               where extracted_at > {{ since }}) as landed
         cross join lateral (
             select min(versions.modified_at + interval '0') as modified_at
             from {{ source('raw', 'orders') }} as versions
             where versions.platform = landed.platform and versions.shop_id = landed.shop_id
                 and versions.order_id = landed.order_id) as history),
        (select min(window_start) from {{ source('ops', 'extraction_windows') }}
         where entity = 'orders' and last_attempt_at > {{ since }}),
        -- + 0: not by walking the reconciliation_date index past the history
        (select min(reconciliation_date + 0)::timestamp at time zone 'Asia/Shanghai'
         from {{ ref('fct_order_reconciliation') }} where judged_at > {{ since }})
    )), 'infinity')::text
{%- endset %}
{%- set from_hour = "'" ~ (run_query(bound_sql).rows[0][0] if execute else 'infinity') ~ "'::timestamptz" %}
with landed_orders as (
    select distinct shop_id, order_id
    from {{ ref('stg_orders') }}
    where extracted_at > {{ since }}
),

touched as (
    select distinct versions.platform, versions.shop_id, versions.hour_start
    from {{ ref('int_order_version_latency') }} as versions
    inner join landed_orders
        on landed_orders.shop_id = versions.shop_id and landed_orders.order_id = versions.order_id
    where {{ only_orders_in('versions', 'landed_orders') }}
    union
    select platform, shop_id, date_trunc('hour', window_start)
    from {{ source('ops', 'extraction_windows') }}
    where entity = 'orders' and last_attempt_at > {{ since }}
    union
    select distinct judged.platform, judged.shop_id, hours.hour_start
    from {{ ref('fct_order_reconciliation') }} as judged
    cross join lateral generate_series(
        judged.reconciliation_date::timestamp at time zone 'Asia/Shanghai',
        (judged.reconciliation_date + 1)::timestamp at time zone 'Asia/Shanghai' - interval '1 hour',
        interval '1 hour') as hours (hour_start)
    where judged.judged_at > {{ since }} and judged.reconciliation_date is not null
),

versions as (
    select versions.*
    from {{ ref('int_order_version_latency') }} as versions
    inner join touched using (platform, shop_id, hour_start)
    where versions.source_modified_at >= {{ from_hour }}
),

windows as (
    select windows.*, date_trunc('hour', windows.window_start) as hour_start
    from {{ ref('stg_ops__extraction_windows') }} as windows
    inner join touched
        on touched.platform = windows.platform and touched.shop_id = windows.shop_id
        and touched.hour_start = date_trunc('hour', windows.window_start)
    where windows.entity = 'orders' and windows.window_start >= {{ from_hour }}
),

orders as (
    select orders.*, date_trunc('hour', orders.updated_at) as hour_start
    from {{ ref('fct_orders') }} as orders
    inner join touched
        on touched.platform = orders.platform and touched.shop_id = orders.shop_id
        and touched.hour_start = date_trunc('hour', orders.updated_at)
    where orders.updated_at >= {{ from_hour }}
),

days as (
    select distinct platform, shop_id, (hour_start at time zone 'Asia/Shanghai')::date as day
    from touched
),

judged as (
    select judged.*
    from {{ ref('fct_order_reconciliation') }} as judged
    inner join days
        on days.platform = judged.platform and days.shop_id = judged.shop_id
        and days.day = judged.reconciliation_date
    where judged.reconciliation_date >= ({{ from_hour }} at time zone 'Asia/Shanghai')::date
),
{% else %}
with versions as (
    select * from {{ ref('int_order_version_latency') }}
),

windows as (
    select *, date_trunc('hour', window_start) as hour_start
    from {{ ref('stg_ops__extraction_windows') }}
    where entity = 'orders'
),

orders as (
    select *, date_trunc('hour', updated_at) as hour_start
    from {{ ref('fct_orders') }}
),

judged as (
    select * from {{ ref('fct_order_reconciliation') }}
),
{% endif %}

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
        hour_start,
        sum(api_reported_count) as api_reported_count,
        sum(orders_landed) as ledger_orders_landed,
        count(*) filter (where is_open) as open_windows
    from windows
    group by 1, 2, 3
),

fields as (
    select
        platform,
        shop_id,
        hour_start,
        avg((
            (created_at is not null)::int + (updated_at is not null)::int
            + (raw_order_status is not null)::int + (goods_amount is not null)::int
            + (discount_amount is not null)::int + (shipping_fee is not null)::int
            + (paid_amount is not null)::int + (order_status_code is not null)::int
        ) / 8.0) as field_completeness_rate
    from orders
    group by 1, 2, 3
),

-- the day's consistency (matched / judged orders), as rpt_reconciliation_daily has it
recon as (
    select
        platform,
        shop_id,
        reconciliation_date as day,
        (count(*) filter (where reconciliation_status = 'matched'))::numeric
            / nullif(count(*) filter (where reconciliation_status in ('matched', 'difference')), 0)
            as consistency_rate
    from judged
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
        recon.consistency_rate::numeric(7, 6) as reconciliation_consistency_rate,
        coalesce(ledger.open_windows, 0) as open_windows,
        coalesce(latency.versions_pushed, 0) as versions_pushed,
        coalesce(latency.orders_pushed, 0) as orders_pushed,
        coalesce(latency.orders_landed - latency.orders_pushed, 0) as orders_poll_only,
        round(latency.push_latency_p50_seconds::numeric, 1) as push_latency_p50_seconds,
        round(latency.push_latency_p95_seconds::numeric, 1) as push_latency_p95_seconds,
        round(latency.push_latency_max_seconds::numeric, 1) as push_latency_max_seconds,
        round(latency.poll_latency_p95_seconds::numeric, 1) as poll_latency_p95_seconds,
        now() as built_at
    from latency
    full outer join ledger
        on ledger.platform = latency.platform
        and ledger.shop_id = latency.shop_id
        and ledger.hour_start = latency.hour_start
    left join fields
        on fields.platform = coalesce(latency.platform, ledger.platform)
        and fields.shop_id = coalesce(latency.shop_id, ledger.shop_id)
        and fields.hour_start = coalesce(latency.hour_start, ledger.hour_start)
    left join recon
        on recon.platform = coalesce(latency.platform, ledger.platform)
        and recon.shop_id = coalesce(latency.shop_id, ledger.shop_id)
        and recon.day = (coalesce(latency.hour_start, ledger.hour_start) at time zone 'Asia/Shanghai')::date
)

select * from final
