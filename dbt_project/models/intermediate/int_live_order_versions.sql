{#- The latest landed version of every order with a version landed in the
    last `live_horizon_hours` (wall time), every column of
    int_orders_status_mapped: what marts.live_orders shows, and what the
    stock positions count as open orders. A view over raw, so an order
    `orderhub stream` lands is here as soon as its transaction commits. -#}
{{ config(materialized='view') }}

with touched as (
    select distinct platform, shop_id, order_id
    from {{ source('raw', 'orders') }}
    where extracted_at > now() - interval '{{ var("live_horizon_hours") }} hours'
),

-- Every version of those orders, so an older version landing late never
-- replaces a newer one.
candidates as (
    select versions.*
    from {{ ref('int_orders_status_mapped') }} as versions
    inner join touched
        on touched.platform = versions.platform
        and touched.shop_id = versions.shop_id
        and touched.order_id = versions.order_id
)

{{ latest_version('candidates') }}
