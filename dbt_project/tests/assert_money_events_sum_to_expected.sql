{#- The ledger and the reconciliation agree: per judged order, the books'
    in_settlement money events (fct_money_events) sum to the expected_amount
    fct_order_reconciliation compared with the settlement. A DAG run checks
    the orders its build judged (macros/data_test_scope.sql). -#}
{{ config(tags=['reconciliation']) }}
with judged as (
    select * from {{ ref('fct_order_reconciliation') }}
    where expected_amount is not null and {{ recent_judged() }}
),

events as (
    select order_key, sum(amount) as books_amount
    from {{ ref('fct_money_events') }}
    where source = 'books' and in_settlement
        {%- if execute and test_scope_is_recent() %}
        -- a restriction (not a semi-join) reaches into the ledger view's
        -- branches: the run's judged orders' books read by their key index
        and order_key = any(array(select order_key from judged))
        {%- else %}
        and order_key in (select order_key from judged)
        {%- endif %}
    group by order_key
)

select judged.platform, judged.order_id, judged.expected_amount, events.books_amount
from judged
left join events on events.order_key = judged.order_key
where judged.expected_amount <> coalesce(events.books_amount, 0)
