{#- A SKU's channel allocations never sum to more than what may be sold. -#}
select merchant_sku, max(available_to_sell) as available, sum(allocation) as allocated
from {{ ref('stock_channel_allocations') }}
group by merchant_sku
having sum(allocation) > max(available_to_sell) or min(allocation) < 0
