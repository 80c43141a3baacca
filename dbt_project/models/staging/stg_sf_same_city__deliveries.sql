{#- SF same-city's deliveries (raw.deliveries: getorderstatus and
    listorderfeed side by side), one row per landed version, in the standard
    delivery fields. Money in fen becomes yuan; the feed's times are Beijing
    time; the rider reaches staging only masked. -#}
with deliveries as (
    select * from {{ source('raw', 'deliveries') }}
    where payload ? 'getorderstatus'
),

steps as (
    -- per landed version, the first time the feed shows each status, and how
    -- often it shows 22 (a rider gave the delivery back, and another accepted it)
    select
        d.raw_id,
        min(step_at) filter (where raw_status = '1') as dispatched_at,
        min(step_at) filter (where raw_status = '10') as accepted_at,
        min(step_at) filter (where raw_status = '12') as arrived_at,
        min(step_at) filter (where raw_status = '15') as picked_up_at,
        min(step_at) filter (where raw_status = '17') as delivered_at,
        min(step_at) filter (where raw_status = '2') as cancelled_at,
        count(*) filter (where raw_status = '22') as rider_changes
    from deliveries as d
    cross join lateral (
        select
            step ->> 'order_status' as raw_status,
            {{ local_ts("step ->> 'create_time'") }} as step_at
        from jsonb_array_elements(d.payload -> 'listorderfeed' -> 'feed') as step
    ) as feed
    group by 1
),

final as (
    select
        d.raw_id,
        d.platform,
        d.shop_id,
        d.order_id,
        'sf_same_city'::text as delivery_service,
        d.payload #>> '{getorderstatus,sf_order_id}' as delivery_id,
        d.payload #>> '{getorderstatus,order_status}' as raw_delivery_status,
        s.dispatched_at,
        s.accepted_at,
        s.arrived_at,
        s.picked_up_at,
        s.delivered_at,
        s.cancelled_at,
        coalesce(s.rider_changes, 0)::integer as rider_changes,
        (d.payload #>> '{getorderstatus,delivery_distance_meter}')::integer as distance_m,
        {{ fen_to_yuan("d.payload #>> '{getorderstatus,total_pay_money}'") }} as delivery_fee_before_coupon,
        {{ fen_to_yuan("d.payload #>> '{getorderstatus,real_pay_money}'") }} as delivery_fee,
        {{ mask_name("d.payload #>> '{getorderstatus,rider_name}'") }} as rider_name_masked,
        {{ mask_phone("d.payload #>> '{getorderstatus,rider_phone}'") }} as rider_phone_masked,
        d.modified_at as updated_at,
        d.extracted_at as landed_at
    from deliveries as d
    left join steps as s on s.raw_id = d.raw_id
)

select * from final
