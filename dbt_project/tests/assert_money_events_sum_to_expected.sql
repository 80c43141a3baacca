{#- The ledger and the reconciliation agree: per judged order, the books'
    in_settlement money events (fct_money_events) sum to the expected_amount
    fct_order_reconciliation compared with the settlement. -#}
{{ config(tags=['reconciliation']) }}
with judged as (
    select * from {{ ref('fct_order_reconciliation') }}
    where expected_amount is not null
),

events as (
    select order_key, sum(amount) as books_amount
    from {{ ref('fct_money_events') }}
    where source = 'books' and in_settlement
        and order_key in (select order_key from judged)
    group by order_key
)

select judged.platform, judged.order_id, judged.expected_amount, events.books_amount
from judged
left join events on events.order_key = judged.order_key
where judged.expected_amount <> coalesce(events.books_amount, 0)
