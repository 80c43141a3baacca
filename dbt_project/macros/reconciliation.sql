{#- The incremental judgement of fct_order_reconciliation (issue 22,
    docs/reconciliation.md "The daily run").

    recon_candidates() runs before the model (its pre-hook), in the build's
    transaction: a temporary table of the orders to judge again. The model
    judges those; the post-hook deletes the ones it no longer judges (an
    order that left the range). Why each is a candidate:

      books landed      the order's expected payout changed (a new version)
      lines written     fct_settlement_lines wrote a record of it since the
                        last judgement (built_at: a new or changed record;
                        builds never overlap, transform.one_build_at_a_time,
                        so no lookback is needed)
      override          someone resolved one of its differences
      still open        pending or awaiting_order: the next day can settle it
      newly in range    due, or with a line, in the days the range gained
      range moved       every order of a shop whose range's first day moved

    An order that is matched, a difference or unsettled keeps its judgement
    until one of these touches it: its category reads only its books, its
    lines, its shop's range and the rules (a rule change judges everything:
    mapping_hash). `incremental` false: everything (this table's every order,
    then the model judges the whole range). -#}
{#- The fingerprint of what judges: the rules, the grace and history
    settings, and (through the books' and lines' own hashes) the contract
    terms and the mapping seeds. A scalar subquery, so PostgreSQL computes it
    once per statement: as a bare md5() over the subqueries' results it was
    computed for every row judged, about 2.5 s of a million (issue 22, 5a). -#}
{% macro recon_inputs_hash() -%}
    (select md5(
        coalesce((select string_agg(rules::text, '|' order by rules::text)
                  from {{ ref('recon_rules') }} as rules), '')
        || '|grace={{ var("recon_grace_days") }}|history={{ var("recon_order_history_days") }}|'
        || coalesce((select mapping_hash from {{ ref('int_order_expected_settlement') }} limit 1), '')
        || coalesce((select mapping_hash from {{ ref('fct_settlement_lines') }} limit 1), '')
    ))
{%- endmacro %}

{% macro recon_candidates() -%}
{%- if execute and is_incremental() -%}
{%- set incremental = not mapping_changed(current=recon_inputs_hash()) -%}
{%- set since = incremental_since('judged_at') if incremental else none -%}
{%- set last_judged = incremental_since('judged_at', lookback_hours=0) if incremental else none -%}
drop table if exists pg_temp.recon_candidates;
create temporary table recon_candidates as
{% if not incremental -%}
select order_key from {{ this }};
{%- else -%}
with coverage as (
    select * from {{ ref('int_settlement_coverage') }}
),

-- Per shop, the range the last build judged against (every row carries it;
-- the newest is found through the (platform, shop_id, range_end_day) index).
judged as (
    select coverage.*, last.range_first_day, last.range_end_day
    from coverage
    left join lateral (
        select judged.range_first_day, judged.range_end_day
        from {{ this }} as judged
        where judged.platform = coverage.platform and judged.shop_id = coverage.shop_id
        order by judged.range_end_day desc
        limit 1
    ) as last on true
),

-- The days each shop's range gained: after the last judged range, or all of
-- it for a shop new to the table or whose first day moved.
gained as (
    select
        platform,
        shop_id,
        case when range_first_day = first_day then greatest(first_day, range_end_day)
             else first_day end as from_day,
        end_day,
        range_first_day is not null and range_first_day <> first_day as moved
    from judged
)

select order_key from {{ ref('int_order_expected_settlement') }}
where landed_at > {{ since }}
union
select order_key from {{ ref('fct_settlement_lines') }}
where built_at > {{ last_judged }}
union
select {{ surrogate_key(['platform', 'shop_id', 'order_id']) }}
from {{ source('ops', 'recon_overrides') }}
where resolved_at > {{ since }}
union
select order_key from {{ this }}
where reconciliation_status in ('pending', 'awaiting_order')
union
select books.order_key
from gained
inner join {{ ref('int_order_expected_settlement') }} as books
    on books.platform = gained.platform and books.shop_id = gained.shop_id
    and books.due_date >= gained.from_day and books.due_date < gained.end_day
union
select lines.order_key
from gained
inner join {{ ref('fct_settlement_lines') }} as lines
    on lines.platform = gained.platform and lines.shop_id = gained.shop_id
    and lines.settle_date >= gained.from_day and lines.settle_date < gained.end_day
union
select judged.order_key
from gained
inner join {{ this }} as judged
    on judged.platform = gained.platform and judged.shop_id = gained.shop_id
where gained.moved;
{%- endif %}
analyze recon_candidates;
{%- endif -%}
{%- endmacro %}

{#- Post-hook: the candidates not judged in this build (judged_at is the
    transaction's time) left the reconciled range; they go. -#}
{% macro recon_drop_out_of_scope() -%}
do $$
begin
    if to_regclass('pg_temp.recon_candidates') is not null then
        -- by the key's index (a join would hash the candidates and scan the table)
        delete from {{ this }} as judged
        where judged.order_key = any(array(select order_key from pg_temp.recon_candidates))
            and judged.judged_at < now();
        drop table pg_temp.recon_candidates;
    end if;
end
$$
{%- endmacro %}

{#- Post-hook: a partial index of the open orders (pending, awaiting_order),
    which every incremental build judges again; dbt's index config has no
    predicate. Created once per table (a full refresh builds a new table). -#}
{% macro recon_open_index() -%}
do $$
begin
    if not exists (select from pg_index
                   where indrelid = '{{ this }}'::regclass and indpred is not null) then
        execute format('create index %I on {{ this }} (order_key)'
                       ' where reconciliation_status in (''pending'', ''awaiting_order'')',
                       'fct_order_reconciliation_open_'
                       || to_char(clock_timestamp(), 'YYYYMMDDHH24MISSUS'));
    end if;
end
$$
{%- endmacro %}
