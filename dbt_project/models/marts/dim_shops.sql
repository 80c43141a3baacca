with shops as (
    select * from {{ source('ops', 'shops') }}
),

platforms as (
    select * from {{ source('ops', 'platforms') }}
),

final as (
    select
        {{ surrogate_key(['shops.platform', 'shops.shop_id']) }} as shop_key,
        shops.platform,
        shops.shop_id,
        shops.shop_name,
        platforms.name_zh as platform_name_zh,
        shops.first_seen_at
    from shops
    left join platforms on platforms.platform = shops.platform
)

select * from final
