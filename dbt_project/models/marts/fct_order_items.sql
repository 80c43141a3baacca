{{ config(
    materialized='incremental',
    unique_key='order_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['order_key']}, {'columns': ['landed_at']}],
) }}

{#- fct_orders carries the mapping hash it was built with; with the SKU
    mapping's it is this table's (macros/incremental.sql): when they differ,
    every line is rebuilt. -#}
{% set incremental_orders = is_incremental() and not mapping_changed(
    order_items_hash('(select mapping_hash from ' ~ ref('fct_orders') ~ ' limit 1)')) %}

-- The lines of each order's latest version (the version fct_orders kept),
-- with each line's share of the order-level discounts, so lines sum to the order.
with orders as (
    select order_key, platform, shop_id, order_id, payload_sha256, discount_amount,
           landed_at, mapping_hash
    from {{ ref('fct_orders') }}
    {% if incremental_orders %}
    -- Orders fct_orders rebuilt since this table's watermark (all of them
    -- when the mapping seeds changed: macros/incremental.sql).
    where landed_at > {{ incremental_since() }}
    {% endif %}
),

lines as (
    select
        orders.order_key,
        orders.discount_amount as order_discount_amount,
        orders.landed_at,
        {{ order_items_hash('orders.mapping_hash') }} as mapping_hash,
        items.*,
        {{ merchant_sku() }} as merchant_sku
    from {{ ref('stg_order_items') }} as items
    inner join orders
        on orders.platform = items.platform
        and orders.shop_id = items.shop_id
        and orders.order_id = items.order_id
        and orders.payload_sha256 = items.payload_sha256
    {{ merchant_sku_joins('items') }}
    {% if incremental_orders %}
    where {{ only_orders_in('items', 'orders') }}
    {% endif %}
),

-- Discounts are shared in proportion to line amounts, rounded down to the
-- cent; the cents left over go to the largest line (then the first).
proportional as (
    select
        lines.*,
        case when sum(line_amount) over (partition by order_key) > 0
             then trunc(order_discount_amount * line_amount
                        / sum(line_amount) over (partition by order_key), 2)
             else 0 end as share_floor,
        row_number() over (partition by order_key order by line_amount desc, line_number)
            as amount_rank
    from lines
),

shares as (
    select
        proportional.*,
        (share_floor + case when amount_rank = 1
            then order_discount_amount - sum(share_floor) over (partition by order_key)
            else 0 end)::numeric(18, 2) as discount_share
    from proportional
),

final as (
    select
        {{ surrogate_key(['platform', 'shop_id', 'order_item_id']) }} as order_item_key,
        order_key,
        platform,
        shop_id,
        order_id,
        order_item_id,
        line_number,
        product_id,
        sku_id,
        outer_sku_id,
        merchant_sku,
        product_name,
        quantity,
        unit_price,
        line_amount,
        discount_share,
        (line_amount - discount_share)::numeric(18, 2) as line_paid_amount,
        landed_at,
        mapping_hash
    from shares
)

select * from final
