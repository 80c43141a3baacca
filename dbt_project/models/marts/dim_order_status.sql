select
    order_status_code::smallint as order_status_code,
    name_en,
    name_zh,
    order_status_code in (40, 50) as is_final
from {{ ref('order_status_codes') }}
