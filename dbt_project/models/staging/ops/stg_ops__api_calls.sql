select
    platform,
    shop_id,
    endpoint,
    called_at,
    seconds,
    outcome,
    error_code,
    backoff_seconds
from {{ source('ops', 'api_calls') }}
