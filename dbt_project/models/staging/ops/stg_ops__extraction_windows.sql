select
    platform,
    shop_id,
    entity,
    window_start,
    window_end,
    api_reported_count,
    orders_landed,
    outcome,
    first_outcome,
    attempts,
    (outcome <> 'ok' or orders_landed < coalesce(api_reported_count, 0)) as is_open
from {{ source('ops', 'extraction_windows') }}
