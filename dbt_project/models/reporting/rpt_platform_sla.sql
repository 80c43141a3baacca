{#- Per platform × endpoint × day (Beijing time): the figures to hold a
    platform to its SLA. Error rate by kind, latency, time spent throttled.
    A table kept by day (issue 22): a build aggregates again only the days
    with a call since its watermark (built_at, minus the lookback), through
    ops.api_calls' called_at index. -#}
{{ config(
    materialized='incremental',
    unique_key=['platform', 'endpoint', 'day'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['day']}, {'columns': ['built_at']}],
) }}
{%- if is_incremental() %}
{#- the first Beijing day with a new call, as a literal (macros/incremental.sql) -#}
{%- set first_day_sql -%}
    select coalesce(((min(called_at) at time zone 'Asia/Shanghai')::date::timestamp
                     at time zone 'Asia/Shanghai')::text, 'infinity')
    from {{ source('ops', 'api_calls') }}
    where called_at > {{ incremental_since('built_at') }}
{%- endset %}
{%- set from_day = run_query(first_day_sql).rows[0][0] if execute else 'infinity' %}
{%- endif %}
with calls as (
    select
        *,
        (called_at at time zone 'Asia/Shanghai')::date as day
    from {{ ref('stg_ops__api_calls') }}
    {%- if is_incremental() %}
    where called_at >= '{{ from_day }}'::timestamptz
    {%- endif %}
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
        coalesce(sum(backoff_seconds), 0) as backoff_seconds,
        now() as built_at
    from calls
    group by 1, 2, 3
)

select * from final
