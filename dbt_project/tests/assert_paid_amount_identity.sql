{#- paid = goods - discounts + shipping, within 0.01, on every platform
    (each defines its amounts so). Failing rows name the order. -#}
select platform, shop_id, order_id, goods_amount, discount_amount, shipping_fee, paid_amount
from {{ ref('fct_orders') }}
where abs(paid_amount - (goods_amount - discount_amount + shipping_fee)) > 0.01
    and {{ recent_rows() }}
