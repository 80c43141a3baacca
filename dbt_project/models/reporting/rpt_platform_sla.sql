{{ config(materialized='view') }}

-- Per platform × endpoint × day (Beijing time): the figures to hold a
-- platform to its SLA. Error rate by kind, latency, time spent throttled.
with calls as (
    select
        *,
        (called_at at time zone 'Asia/Shanghai')::date as day
    from {{ ref('stg_ops__api_calls') }}
),

final as (
    select
        platform,
        endpoint,
        day,
        count(*) as calls,
        round(avg((outcome <> 'ok')::int), 4) as error_rate,
        count(*) filter (where outcome = 'transport') as errors_transport,
        count(*) filter (where outcome = 'server') as errors_server,
        count(*) filter (where outcome = 'malformed') as errors_malformed,
        count(*) filter (where outcome = 'throttled') as errors_throttled,
        count(*) filter (where outcome = 'clock') as errors_clock,
        count(*) filter (where outcome not in ('ok', 'transport', 'server', 'malformed', 'throttled', 'clock'))
            as errors_other,
        round((percentile_cont(0.5) within group (order by seconds) * 1000)::numeric, 1) as latency_p50_ms,
        round((percentile_cont(0.95) within group (order by seconds) * 1000)::numeric, 1) as latency_p95_ms,
        coalesce(sum(backoff_seconds) filter (where outcome = 'throttled'), 0) as throttled_seconds,
        coalesce(sum(backoff_seconds), 0) as backoff_seconds
    from calls
    group by 1, 2, 3
)

select * from final
