{#- marts.rpt_shop_status (issue 20): every shop as an operator sees it, the
    way Airbyte and Fivetran show their connections. One row per shop and
    entity (orders for every shop; settlements where the ledger has them):
    the last window synced whole, what landed in the last 24 hours (by when it
    landed, wall clock), the ledger windows still open and the last error,
    and how fast pushed orders arrived. A view: "the last 24 hours" are
    counted when it is read. `orderhub status` prints it. -#}
{{ config(materialized='view') }}

with ledger as (
    select
        windows.*,
        ledger.last_error,
        ledger.last_attempt_at
    from {{ ref('stg_ops__extraction_windows') }} as windows
    join {{ source('ops', 'extraction_windows') }} as ledger
        using (platform, shop_id, entity, window_start, window_end)
),

ledger_by_entity as (
    select
        platform,
        shop_id,
        entity,
        max(window_end) filter (where not is_open) as synced_until,
        max(last_attempt_at) as last_sync_at,
        count(*) filter (where is_open) as open_windows,
        count(*) filter (where last_attempt_at >= now() - interval '24 hours') as windows_24h
    from ledger
    group by 1, 2, 3
),

last_errors as (
    select distinct on (platform, shop_id, entity)
        platform, shop_id, entity, last_error, last_attempt_at as last_error_at
    from ledger
    where last_error is not null
    order by platform, shop_id, entity, last_attempt_at desc
),

orders_landed as (
    select
        platform,
        shop_id,
        'orders' as entity,
        count(distinct order_id) as orders_24h,
        count(*) as versions_24h,
        count(*) filter (where intake = 'push') as pushed_versions_24h,
        percentile_cont(0.5) within group (
            order by extract(epoch from platform_fetched_at - modified_at))
            filter (where intake = 'push') as push_latency_p50_seconds,
        percentile_cont(0.95) within group (
            order by extract(epoch from platform_fetched_at - modified_at))
            filter (where intake = 'push') as push_latency_p95_seconds
    from {{ source('raw', 'orders') }}
    where extracted_at >= now() - interval '24 hours'
    group by 1, 2
),

settlements_landed as (
    select
        platform,
        shop_id,
        'settlements' as entity,
        count(distinct order_id) as orders_24h,
        count(*) as versions_24h
    from {{ source('raw', 'settlements') }}
    where extracted_at >= now() - interval '24 hours'
    group by 1, 2
),

landed as (
    select * from orders_landed
    union all
    select platform, shop_id, entity, orders_24h, versions_24h, 0, null, null
    from settlements_landed
),

shop_entities as (
    select platform, shop_id, 'orders' as entity from {{ source('ops', 'shops') }}
    union
    select platform, shop_id, entity from ledger_by_entity
),

final as (
    select
        shop_entities.platform,
        shop_entities.shop_id,
        shops.shop_name,
        shop_entities.entity,
        case
            when ledger_by_entity.last_sync_at is null and landed.versions_24h is null
                then 'never synced'
            when ledger_by_entity.open_windows > 0 then 'open windows'
            else 'ok'
        end as status,
        ledger_by_entity.synced_until,
        ledger_by_entity.last_sync_at,
        coalesce(ledger_by_entity.windows_24h, 0) as windows_24h,
        coalesce(landed.orders_24h, 0) as orders_24h,
        coalesce(landed.versions_24h, 0) as versions_24h,
        coalesce(landed.pushed_versions_24h, 0) as pushed_versions_24h,
        round(landed.push_latency_p50_seconds::numeric, 1) as push_latency_p50_seconds,
        round(landed.push_latency_p95_seconds::numeric, 1) as push_latency_p95_seconds,
        coalesce(ledger_by_entity.open_windows, 0) as open_windows,
        last_errors.last_error,
        last_errors.last_error_at
    from shop_entities
    left join {{ source('ops', 'shops') }} as shops
        on shops.platform = shop_entities.platform and shops.shop_id = shop_entities.shop_id
    left join ledger_by_entity
        on ledger_by_entity.platform = shop_entities.platform
        and ledger_by_entity.shop_id = shop_entities.shop_id
        and ledger_by_entity.entity = shop_entities.entity
    left join landed
        on landed.platform = shop_entities.platform
        and landed.shop_id = shop_entities.shop_id
        and landed.entity = shop_entities.entity
    left join last_errors
        on last_errors.platform = shop_entities.platform
        and last_errors.shop_id = shop_entities.shop_id
        and last_errors.entity = shop_entities.entity
)

select * from final
