{#- The reconciled range of each shop: the settlement days its ledger holds
    (ok windows of entity settlements), first day inclusive, end day
    exclusive, in Beijing dates. Bills are whole days; a failed day inside the
    range shows in the ledger checks. -#}
select
    platform,
    shop_id,
    min((window_start at time zone 'Asia/Shanghai')::date) as first_day,
    max((window_end at time zone 'Asia/Shanghai')::date) as end_day
from {{ ref('stg_ops__extraction_windows') }}
where entity = 'settlements' and outcome = 'ok'
group by 1, 2
