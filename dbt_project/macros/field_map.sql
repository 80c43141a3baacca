{#- Staging generated from the mapping seeds (one source of truth):

    seeds/standard_fields.csv     the standard fields of each entity (order,
                                  order_item, settlement_line), their type and
                                  PII handling
    seeds/platform_mapping.csv    per platform (kind = field, read through the
                                  view platform_field_map): where each standard
                                  field is in the payload (a PostgreSQL SQL/JSON
                                  path), its unit, a default, and whether every
                                  payload must carry it

    stg_orders, stg_order_items and stg_settlement_lines are one call each of
    the macros below: one branch per platform that has field rows (its raw
    partition, its paths), then the branches' union, then the standard
    columns with personal data masked. Mapping a field for a platform is a row
    in the seed; a new platform is its rows; nothing here changes. A standard
    field a platform does not map is null for that platform.

    The mapping is read with run_query when the model is compiled (the seed is
    upstream of staging, so `dbt build` loads it first); target/compiled shows
    the SQL each platform's branch runs. -#}

{#- The platforms with field rows for an entity (at parse time: none). -#}
{% macro mapped_platforms(entity) %}
    {% set field_map = ref('platform_field_map') %}
    {#- the branches read standard_fields too (field_map_rows): a dependency
        dbt must see when parsing, when no branch exists yet -#}
    {% set fields = ref('standard_fields') %}
    {#- ... and the seed itself, for its decode rows (payload_document) -#}
    {% set mapping = ref('platform_mapping') %}
    {% if not execute %}
        {{ return([]) }}
    {% endif %}
    {% set names = [] %}
    {% set query = "select distinct platform from " ~ field_map ~ " where entity = '" ~ entity ~ "' order by 1" %}
    {% for row in run_query(query).rows %}
        {% do names.append(row[0]) %}
    {% endfor %}
    {{ return(names) }}
{% endmacro %}

{#- Rows of the field map for one platform and entity, one per standard field
    of the entity (mapped or not), in standard_fields order. -#}
{% macro field_map_rows(platform, entity) %}
    {% set fields = ref('standard_fields') %}
    {% set field_map = ref('platform_field_map') %}
    {% if not execute %}
        {{ return([]) }}
    {% endif %}
    {% set query %}
        select f.standard_field, f.data_type, coalesce(f.pii, '') as pii,
               coalesce(m.source_path, '') as source_path, coalesce(m.unit, '') as unit,
               coalesce(m.aggregate, 'first') as aggregate, m.default_value,
               (m.platform is not null) as mapped
        from {{ fields }} as f
        left join {{ field_map }} as m
            on m.entity = f.entity and m.standard_field = f.standard_field
            and m.platform = '{{ platform }}'
        where f.entity = '{{ entity }}'
        order by f.position
    {% endset %}
    {% set rows = [] %}
    {% for row in run_query(query).rows %}
        {% do rows.append({
            'field': row[0], 'data_type': row[1], 'pii': row[2], 'path': row[3],
            'unit': row[4], 'aggregate': row[5], 'default': row[6], 'mapped': row[7]}) %}
    {% endfor %}
    {{ return(rows) }}
{% endmacro %}

{#- A platform's payload as its paths read it: the fields its decode rows
    name hold JSON as a string (Meituan's detail and extras), parsed here so
    a path reaches inside them ($.detail[*].sku_id); an empty string is none.
    Landing quarantines an order whose such field does not parse
    (orderhub.extract.to_rows), so the cast cannot fail. Without decode rows:
    the payload itself. (Python's twin: orderhub.mapping.document_sql.) -#}
{% macro payload_document(platform, payload='payload') %}
    {%- set mapping = ref('platform_mapping') -%}
    {%- if not execute -%}{{ return(payload) }}{%- endif -%}
    {%- set fields = [] -%}
    {%- for row in run_query("select source_path from " ~ mapping ~ " where kind = 'decode'"
                             ~ " and platform = '" ~ platform ~ "' order by 1").rows -%}
        {%- if not modules.re.match('^\$\.[A-Za-z_][A-Za-z0-9_]*$', row[0]) -%}
            {{ exceptions.raise_compiler_error("platform_mapping: a decode row names a top-level field ($.name), not " ~ row[0]) }}
        {%- endif -%}
        {%- do fields.append("'" ~ row[0][2:] ~ "', nullif(" ~ payload ~ " ->> '" ~ row[0][2:] ~ "', '')::jsonb") -%}
    {%- endfor -%}
    {%- if fields -%}
        {{ return("(" ~ payload ~ " || jsonb_build_object(" ~ fields | join(', ') ~ "))") }}
    {%- endif -%}
    {{ return(payload) }}
{% endmacro %}

{#- Text of one SQL/JSON path in a jsonb document. Plain member paths
    ($.a.b) use #>> (fast); anything else goes through jsonb_path_query_first
    (silently: a path that cannot be evaluated yields nothing).
    "p1 | p2" means the first non-empty of the alternatives. -#}
{% macro json_text(doc, path, aggregate='first') %}
    {%- set alternatives = [] -%}
    {%- for alternative in path.split(' | ') -%}
        {%- set p = alternative.strip() -%}
        {%- set literal = "'" ~ p.replace("'", "''") ~ "'" -%}
        {%- if aggregate == 'sum' -%}
            {%- do alternatives.append("(select sum(nullif(v #>> '{}', '')::numeric) from jsonb_path_query("
                ~ doc ~ ", " ~ literal ~ ") as v)::text") -%}
        {%- elif modules.re.match('^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$', p) -%}
            {%- do alternatives.append("nullif(" ~ doc ~ " #>> '{" ~ p[2:].replace('.', ',') ~ "}', '')") -%}
        {%- else -%}
            {#- silent: a path that cannot be evaluated on this payload (an
                arithmetic operand missing) yields nothing, so "a | b" falls to b -#}
            {%- do alternatives.append("nullif(jsonb_path_query_first(" ~ doc ~ ", " ~ literal ~ ", silent => true) #>> '{}', '')") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if alternatives | length == 1 -%}{{ alternatives[0] }}{%- else -%}coalesce({{ alternatives | join(', ') }}){%- endif -%}
{% endmacro %}

{#- One mapped standard field as a typed SQL expression. -#}
{% macro mapped_field(doc, row) %}
    {%- set sql_type = {'text': 'text', 'integer': 'integer', 'money': 'numeric(18, 2)',
                        'timestamp': 'timestamptz', 'array': 'jsonb'}[row.data_type] -%}
    {%- if not row.mapped -%}
        null::{{ sql_type }}
    {%- elif row.data_type == 'array' and row.path.endswith('[*]') -%}
        {#- every element the path reaches, from several arrays ($.groups[*].items[*]) -#}
        jsonb_path_query_array({{ doc }}, '{{ row.path }}')
    {%- elif row.data_type == 'array' -%}
        coalesce(jsonb_path_query_first({{ doc }}, '{{ row.path }}'), '[]'::jsonb)
    {%- else -%}
        {%- set text -%}
            {%- if row.path -%}{{ json_text(doc, row.path, row.aggregate) }}{%- else -%}null::text{%- endif -%}
        {%- endset -%}
        {%- if row.default is not none -%}
            {%- set text = "coalesce(" ~ text ~ ", '" ~ row.default ~ "')" -%}
        {%- endif -%}
        {%- if row.data_type == 'money' and row.unit == 'fen' -%}{{ fen_to_yuan(text) }}
        {%- elif row.data_type == 'money' -%}{{ yuan(text) }}
        {%- elif row.data_type == 'timestamp' and row.unit == 'unix_seconds' -%}{{ unix_ts(text) }}
        {%- elif row.data_type == 'timestamp' and row.unit == 'iso_time' -%}{{ iso_ts(text) }}
        {%- elif row.data_type == 'timestamp' -%}{{ local_ts(text) }}
        {%- elif row.data_type == 'integer' -%}({{ text }})::numeric::integer
        {%- else -%}{{ text }}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}

{#- Standard columns with personal data handled: a name or phone leaves
    staging masked (buyer_name_masked), a phone also as the salted buyer_key,
    region fields only inside buyer_address_masked. -#}
{% macro standard_columns(rows, derived={}) %}
    {%- set columns = [] -%}
    {%- set regions = [] -%}
    {%- for row in rows if row.data_type != 'array' -%}
        {%- if row.pii == 'name' -%}
            {%- do columns.append(mask_name(row.field) ~ ' as ' ~ row.field ~ '_masked') -%}
        {%- elif row.pii == 'phone' -%}
            {%- do columns.append(mask_phone(row.field) ~ ' as ' ~ row.field ~ '_masked') -%}
            {%- do columns.append(pii_hash(row.field) ~ ' as buyer_key') -%}
        {%- elif row.pii == 'region' -%}
            {%- do regions.append("nullif(" ~ row.field ~ ", '')") -%}
        {%- else -%}
            {%- do columns.append(derived[row.field] ~ ' as ' ~ row.field if row.field in derived else row.field) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if regions -%}
        {%- do columns.append("nullif(concat_ws(' ', " ~ regions | join(', ') ~ "), '') || ' ****' as buyer_address_masked") -%}
    {%- endif -%}
    {{ return(columns) }}
{% endmacro %}

{#- A staging model of one entity from its raw table, for every mapped
    platform: each platform's branch maps every standard field of the entity
    (its paths, units, times, defaults) from its partition of raw, the
    branches are unioned, and the union's columns leave with personal data
    masked, the raw table's lineage columns kept (``lineage``: "expression as
    name" or a column). Row by row, so a filter on extracted_at reaches raw's
    index. Each branch reads the raw table itself: one CTE that every branch
    read would be materialized whole by PostgreSQL. -#}
{% macro stg_entity(entity, raw_entity, derived={}, lineage=['payload_sha256', 'extracted_at']) %}
{%- set raw = source('raw', raw_entity) -%}
{%- set platforms = mapped_platforms(entity) -%}
with
{%- for platform in platforms %}
{%- set rows = field_map_rows(platform, entity) %}
{{ platform }} as (
    select
        platform,
        shop_id,
        order_id,
        {%- set doc = payload_document(platform) %}
        {%- for row in rows if row.data_type != 'array' %}
        {{ mapped_field(doc, row) }} as {{ row.field }},
        {%- endfor %}
        {{ lineage | join(',\n        ') }}
    from {{ raw }}
    where platform = '{{ platform }}'
),
{%- endfor %}

mapped as (
    {{ union_branches(platforms, raw) }}
),

final as (
    select
        platform,
        shop_id,
        order_id,
        {%- for column in standard_columns(field_map_rows(platforms[0], entity) if platforms else [], derived) %}
        {{ column }},
        {%- endfor %}
        'CNY'::text as currency,
        {%- for column in lineage %}
        {{ column.split(' as ')[-1] }}{{ ',' if not loop.last }}
        {%- endfor %}
    from mapped
)

select * from final
{% endmacro %}

{#- The platforms' branches (CTEs named after them), one under the other:
    the union point of a staging model. -#}
{% macro union_branches(platforms, raw) -%}
    {%- for platform in platforms %}
    select * from {{ platform }}
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select null::text as platform from {{ raw }} where false
    {%- endfor %}
{%- endmacro %}

{#- One row per raw version of an order, every platform (raw keeps every
    version; the marts pick the latest with latest_version()). -#}
{% macro stg_orders() %}
{#- discount_amount: the platform's total, else the sum of the funder parts. -#}
{{ stg_entity('order', 'orders',
    derived={'discount_amount': "coalesce(discount_amount, (coalesce(merchant_discount_amount, 0)
        + coalesce(platform_discount_amount, 0) + coalesce(influencer_discount_amount, 0)
        + coalesce(payment_discount_amount, 0))::numeric(18, 2))"},
    lineage=['modified_at as source_modified_at', 'platform_fetched_at', 'payload_sha256',
             'extracted_at', 'sync_mode', 'intake']) }}
{% endmacro %}

{#- One row per line of every raw version, every platform (the marts keep the latest). -#}
{% macro stg_order_items() %}
{%- set raw = source('raw', 'orders') -%}
{%- set platforms = mapped_platforms('order') -%}
{%- set derived = {
    'order_item_id': "coalesce(order_item_id, order_id || '-' || line_number)",
    'unit_price': "coalesce(unit_price, (line_amount / nullif(quantity, 0))::numeric(18, 2))",
    'line_amount': "coalesce(line_amount, (unit_price * quantity)::numeric(18, 2))",
} -%}
with
{%- for platform in platforms %}
{%- set order_rows = field_map_rows(platform, 'order') %}
{%- set rows = field_map_rows(platform, 'order_item') %}
{{ platform }} as (
    select
        source.platform,
        source.shop_id,
        source.order_id,
        line.line_number::integer as line_number,
        {%- for row in rows %}
        {{ mapped_field('line.item', row) }} as {{ row.field }},
        {%- endfor %}
        source.payload_sha256,
        source.extracted_at
    from {{ raw }} as source
    cross join lateral jsonb_array_elements(
        {%- for row in order_rows if row.data_type == 'array' %}{{ mapped_field(payload_document(platform, 'source.payload'), row) }}{% endfor %}
    ) with ordinality as line (item, line_number)
    where source.platform = '{{ platform }}'
),
{%- endfor %}

lines as (
    {{ union_branches(platforms, raw) }}
),

final as (
    select
        platform,
        shop_id,
        order_id,
        line_number,
        {%- for column in standard_columns(field_map_rows(platforms[0], 'order_item') if platforms else [], derived) %}
        {{ column }},
        {%- endfor %}
        payload_sha256,
        extracted_at
    from lines
)

select * from final
{% endmacro %}

{#- One row per settlement record (a bill row, a settle line, a bill-file
    row), every platform that settles, mapped like orders from the field rows
    (entity settlement_line). Components are magnitudes; settle_amount is
    signed and, when the platform gives no total, derived from the components. -#}
{% macro stg_settlement_lines() %}
{{ stg_entity('settlement_line', 'settlements',
    derived={'settle_amount': "coalesce(settle_amount, (coalesce(gross_amount, 0)
        + coalesce(platform_subsidy_amount, 0) + coalesce(influencer_subsidy_amount, 0)
        - coalesce(commission_amount, 0) - coalesce(service_fee_amount, 0)
        - coalesce(other_fee_amount, 0) - coalesce(refund_amount, 0))::numeric(18, 2))"}) }}
{% endmacro %}
