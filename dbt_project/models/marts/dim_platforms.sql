{#- The platform registry (orderhub.platforms), as every run writes it to
    ops.platforms: a new platform is here once it is registered. -#}
with platforms as (
    select * from {{ source('ops', 'platforms') }}
),

final as (
    select
        platform,
        name_en,
        name_zh,
        order_api,
        money_unit,
        time_format,
        lists_unpaid_orders
    from platforms
)

select * from final
