{#- The warehouse's counts (raw.stock_on_hand), one row per warehouse,
    merchant SKU and count. -#}
with counts as (
    select * from {{ source('raw', 'stock_on_hand') }}
),

final as (
    select
        warehouse_id,
        merchant_sku,
        as_of as counted_at,
        on_hand,
        extracted_at as landed_at
    from counts
)

select * from final
