select
    platform,
    name_en,
    name_zh,
    order_api,
    money_unit,
    time_format,
    lists_unpaid_orders
from {{ ref('platforms') }}
