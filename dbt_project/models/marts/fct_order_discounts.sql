{{ config(materialized='view') }}

-- One row per discount on an order, by who funds it. The platforms give the
-- split by funder as order-level amounts (platform_field_map: *_discount_amount);
-- whatever of the order's total discount they do not attribute is one
-- "unattributed" row, so an order's rows always sum to its discount_amount.
with orders as (
    select * from {{ ref('fct_orders') }}
),

parts as (
    select
        orders.order_key,
        orders.platform,
        orders.shop_id,
        orders.order_id,
        part.funder,
        part.amount,
        orders.landed_at
    from orders
    cross join lateral (
        values
            ('merchant', orders.merchant_discount_amount),
            ('platform', orders.platform_discount_amount),
            ('influencer', orders.influencer_discount_amount),
            ('payment_channel', orders.payment_discount_amount),
            ('unattributed', orders.discount_amount
                - coalesce(orders.merchant_discount_amount, 0)
                - coalesce(orders.platform_discount_amount, 0)
                - coalesce(orders.influencer_discount_amount, 0)
                - coalesce(orders.payment_discount_amount, 0))
    ) as part (funder, amount)
    where part.amount <> 0
),

final as (
    select
        {{ surrogate_key(['order_key', 'funder']) }} as order_discount_key,
        order_key,
        platform,
        shop_id,
        order_id,
        funder,
        amount::numeric(18, 2) as discount_amount,
        landed_at
    from parts
)

select * from final
