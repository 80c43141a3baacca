{#- One row per delivery of a shop's own order (issue 19): its latest
    version, the standard delivery status, the time of every step, distance
    and the fee the shop pays, linked to fct_orders by order_key. A delivery
    whose order has not landed yet (a status callback can come first) waits
    in raw.deliveries and shows here from the build after its order lands.
    A new delivery service is one more staging model in the union below. -#}
{{ config(
    materialized='table',
    indexes=[{'columns': ['order_key']},
             {'columns': ['platform', 'shop_id', 'order_id'], 'unique': true}],
) }}

with versions as (
    select * from {{ ref('stg_sf_same_city__deliveries') }}
),

latest as (
    select distinct on (platform, shop_id, order_id) *
    from versions
    order by platform, shop_id, order_id, updated_at desc, raw_id desc
),

codes as (
    select * from {{ ref('delivery_status_codes') }}
),

orders as (
    select order_key, platform, shop_id, order_id from {{ ref('fct_orders') }}
),

final as (
    select
        orders.order_key,
        latest.platform,
        latest.shop_id,
        latest.order_id,
        latest.delivery_service,
        latest.delivery_id,
        latest.raw_delivery_status,
        codes.delivery_status_code,
        codes.name_en as delivery_status,
        coalesce(codes.is_final, false) as is_final,
        latest.dispatched_at,
        latest.accepted_at,
        latest.arrived_at,
        latest.picked_up_at,
        latest.delivered_at,
        latest.cancelled_at,
        extract(epoch from latest.delivered_at - latest.picked_up_at)::integer
            as riding_seconds,
        latest.rider_changes,
        latest.distance_m,
        latest.delivery_fee_before_coupon,
        latest.delivery_fee,
        latest.rider_name_masked,
        latest.rider_phone_masked,
        latest.updated_at,
        latest.landed_at
    from latest
    left join codes
        on codes.delivery_service = latest.delivery_service
        and codes.raw_delivery_status = latest.raw_delivery_status
    inner join orders
        on orders.platform = latest.platform
        and orders.shop_id = latest.shop_id
        and orders.order_id = latest.order_id
)

select * from final
