{#- The funder split a platform gives never exceeds the order's total
    discount (a negative "unattributed" row means a mis-mapped amount). -#}
select order_key, platform, order_id, discount_amount
from {{ ref('fct_order_discounts') }}
where funder = 'unattributed' and discount_amount < 0
    and {{ recent_rows() }}
