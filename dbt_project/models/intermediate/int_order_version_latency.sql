{#- Every landed order version with its sync latency: when the platform
    served it to us minus when it was modified, both on the platform's clock.
    The one definition of sync latency: rpt_ingestion_health aggregates it per
    shop-hour, and the sync_latency alert (orderhub.alerts) reads it filtered
    by source_modified_at, a filter that reaches the raw tables'
    modified_at index through the views (an hour_start filter on the health
    mart cannot: the hour is computed, and the mart's full join hides it). -#}
select
    platform,
    shop_id,
    order_id,
    source_modified_at,
    date_trunc('hour', source_modified_at) as hour_start,
    extract(epoch from platform_fetched_at - source_modified_at) as latency_seconds,
    -- live: read by the hourly cycle; backfill: by a sync of history (its
    -- "latency" is the age of the history, not how fast intake is)
    sync_mode,
    -- poll (the order search APIs) or push (a platform message, then the
    -- detail API): whichever landed the version first
    intake
from {{ ref('stg_orders') }}
