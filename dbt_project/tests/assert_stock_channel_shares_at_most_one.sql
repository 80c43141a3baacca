{#- seeds/stock_channels.csv: the channels' shares of a SKU's available units
    sum to at most 1, and at most one channel has priority (it also gets what
    rounding leaves), so OrderHub never offers more than is available. -#}
select sum(share) as shares, count(*) filter (where priority) as priority_channels
from {{ ref('stock_channels') }}
having sum(share) > 1 or count(*) filter (where priority) > 1
