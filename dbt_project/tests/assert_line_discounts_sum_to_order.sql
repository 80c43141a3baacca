{#- Money identity for lines: an order's discount shares sum to its
    discount_amount and its line amounts to its goods_amount (within 0.01). -#}
with lines as (
    select order_key, sum(discount_share) as shares, sum(line_amount) as lines_total
    from {{ ref('fct_order_items') }}
    where {{ recent_rows() }}
    group by order_key
)

select orders.platform, orders.order_id, orders.discount_amount, lines.shares,
       orders.goods_amount, lines.lines_total
from {{ ref('fct_orders') }} as orders
inner join lines on lines.order_key = orders.order_key
where lines.shares <> orders.discount_amount
    or abs(lines.lines_total - orders.goods_amount) > 0.01
