{#- What needs a person: every difference whose rule says manual_review and
    that no override has resolved, largest first, with what the rule says to
    do. Resolve one with `orderhub recon resolve` (ops.recon_overrides). -#}
{{ config(tags=['reporting', 'reconciliation']) }}

with reconciliation as (
    select * from {{ ref('fct_order_reconciliation') }}
),

final as (
    select
        reconciliation.platform,
        reconciliation.shop_id,
        reconciliation.order_id,
        reconciliation.difference_category,
        reconciliation.expected_amount,
        reconciliation.settled_amount,
        reconciliation.difference_amount,
        reconciliation.due_date,
        reconciliation.settled_date,
        reconciliation.reconciliation_date,
        rules.description as what_to_do,
        row_number() over (
            order by abs(reconciliation.difference_amount) desc, reconciliation.platform,
                reconciliation.shop_id, reconciliation.order_id
        ) as priority
    from reconciliation
    inner join {{ ref('recon_rules') }} as rules on rules.category = reconciliation.difference_category
    where reconciliation.action = 'manual_review' and reconciliation.resolution is null
)

select * from final
