{#- Incremental marts (docs/model.md, "Incremental marts").

    A mart row is rebuilt when its order landed a new version since the
    mart's watermark (minus var('incremental_lookback_hours')), when its
    status is still unmapped, or when the mapping seeds changed since it was
    built (mapping_hash). Otherwise it is left alone, so an hourly run costs
    what the new hour costs, not what history costs. -#}

{#- A fingerprint of the field and status mapping seeds: a changed seed
    rebuilds the rows of the order marts (and what is judged from them). -#}
{% macro mapping_hash() -%}
    (
        select md5(string_agg(part, '|' order by part))
        from (
            select 'status:' || t::text as part from {{ ref('platform_status_map') }} as t
            union all
            select 'field:' || t::text from {{ ref('platform_field_map') }} as t
            union all
            select 'standard:' || t::text from {{ ref('standard_fields') }} as t
        ) as parts
    )
{%- endmacro %}

{#- The fingerprint of fct_order_items' rows: the orders' mapping and the SKU
    mapping that gives a line its merchant SKU (macros/stock.sql). A SKU
    mapping edit, which the business makes often, rebuilds the lines only:
    not fct_orders, and not the reconciliation judged from it. -#}
{% macro order_items_hash(orders_hash) -%}
    md5({{ orders_hash }} || (
        select coalesce(md5(string_agg(part, '|' order by part)), '')
        from (
            select 'sku:' || t::text as part from {{ ref('sku_mapping') }} as t
            union all
            select 'merchant_sku:' || merchant_sku from {{ ref('merchant_skus') }}
        ) as parts
    ))
{%- endmacro %}

{#- The lower bound of extracted_at that an incremental run re-reads (the
    newest `column` of this model minus `lookback_hours`, by default the
    project's lookback). Looked up when the model runs and written as a
    literal: behind a subquery the planner can only assume a third of the
    history passes; a literal it estimates from the statistics (and the
    index, past their newest value). -#}
{% macro incremental_since(column='landed_at', lookback_hours=none) -%}
    {%- set lookback = var("incremental_lookback_hours") if lookback_hours is none else lookback_hours -%}
    {%- set sql -%}
        select (coalesce(max({{ column }}), '-infinity'::timestamptz)
                - interval '{{ lookback }} hours')::text
        from {{ this }}
    {%- endset -%}
    {%- if execute -%}
        '{{ run_query(sql).rows[0][0] }}'::timestamptz
    {%- else -%}
        ({{ sql }})::timestamptz
    {%- endif -%}
{%- endmacro %}

{#- True when the mapping seeds changed since this model was last built: every
    row carries the hash of the build that wrote it, and a build that sees a
    new hash rewrites them all. Asked when the model runs, so an ordinary
    hourly run compiles to SQL that never reads the whole table. `current`:
    SQL for the hash to compare with (default: the seeds' hash now). -#}
{% macro mapping_changed(current=none) -%}
    {%- if not execute or not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {#- A table built before it carried the hash, or a column its yml names
        (a column added since, such as fct_orders.order_date): rebuild every
        row (the model's on_schema_change adds the column, empty). -#}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {%- if 'mapping_hash' not in columns or model.columns.keys() | reject('in', columns) | list -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set result = run_query("select (select mapping_hash from " ~ this ~ " limit 1)"
                               ~ " is distinct from " ~ (current or mapping_hash())) -%}
    {{ return(result.rows[0][0]) }}
{%- endmacro %}

{#- A restriction to the orders in `keys` (a CTE with shop_id and order_id)
    that PostgreSQL pushes through the staging views down to the raw tables'
    (shop_id, order_id) index: only these orders' payloads are parsed, not the
    whole history. A join on the same keys alone would be a hash join over
    every payload. `alias` is the staging-side relation. -#}
{% macro only_orders_in(alias, keys) -%}
    {{ alias }}.shop_id = any(array(select distinct shop_id from {{ keys }}))
    and {{ alias }}.order_id = any(array(select order_id from {{ keys }}))
{%- endmacro %}

{#- Post-hook of every model (dbt_project.yml); it does something only for an
    incremental one: create each index of the model's `indexes` config that
    its table lacks. dbt creates them only with the table (a first build or a
    full refresh), so an index added to the config later never reaches a
    warehouse that already has the table: fct_settlement_lines.built_at, which
    the daily judgement reads (issue 22), fct_orders.order_status_code,
    int_order_expected_settlement.due_date, or every index of
    fct_order_reconciliation on a warehouse that built it as a plain table.
    Matched by columns, in order; a no-op when they are all there. -#}
{% macro ensure_indexes() -%}
{%- if config.get('materialized') == 'incremental' %}
{%- for index in config.get('indexes') or [] %}
do $$
begin
    if not exists (
        select from pg_index as i
        where i.indrelid = '{{ this }}'::regclass and i.indpred is null
            and array(select a.attname::text
                      from unnest(i.indkey::int2[]) with ordinality as k(attnum, n)
                      inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
                      order by k.n)
                = array[{% for c in index['columns'] %}'{{ c }}'{{ ', ' if not loop.last }}{% endfor %}]::text[]
    ) then
        execute format('create {{ "unique " if index.get("unique") }}index %I on {{ this }} ({{ index["columns"] | join(", ") }})',
                       '{{ this.identifier }}_' || substr(md5('{{ index["columns"] | join(",") }}'
                                                               || clock_timestamp()::text), 1, 16));
    end if;
end
$$;
{%- endfor %}
{%- endif %}
{%- endmacro %}
