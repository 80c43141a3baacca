{#- marts.stock_channel_allocations (issue 18): what each channel may offer
    of each merchant SKU now: its share (seeds/stock_channels.csv) of the
    SKU's available units, rounded down; the priority channel also gets what
    the rounding leaves. The allocations of a SKU never sum to more than its
    available_to_sell. A view over marts.stock_positions. -#}
{{ config(materialized='view') }}

with positions as (
    select merchant_sku, available_to_sell from {{ ref('stock_positions') }}
),

channels as (
    select platform, shop_id, share, priority from {{ ref('stock_channels') }}
),

shares as (
    select
        positions.merchant_sku,
        channels.platform,
        channels.shop_id,
        channels.share,
        channels.priority,
        positions.available_to_sell,
        floor(positions.available_to_sell * channels.share)::integer as share_units
    from positions
    cross join channels
),

final as (
    select
        merchant_sku,
        platform,
        shop_id,
        share,
        priority,
        available_to_sell,
        (share_units + case when priority
            then available_to_sell - sum(share_units) over (partition by merchant_sku)
            else 0 end)::integer as allocation
    from shares
)

select * from final
