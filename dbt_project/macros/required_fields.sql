{#- The mapping-consistency check: for every platform_field_map row marked
    required, how many latest payloads (or order lines) do not carry its
    path. Returns SQL with one row per (platform, entity, field) that is
    missing somewhere; used by tests/assert_required_fields_present.sql.
    (`orderhub mapping check` reports the same, plus fields the map lacks.)
    Hourly runs look at the orders' versions landed recently only
    (macros/data_test_scope.sql). -#}
{% macro missing_required_fields_sql() %}
    {%- set field_map = ref('platform_field_map') -%}
    {%- set mapping = ref('platform_mapping') -%}  {#- its decode rows: payload_document -#}
    {%- if not execute -%}
        {{ return("select null::text as platform, null::text as entity, null::text as standard_field, null::text as source_path, 0::bigint as payloads_missing where false") }}
    {%- endif -%}
    {%- set rows = run_query(
        "select m.platform, m.entity, m.standard_field, m.source_path, lines.source_path"
        ~ " from " ~ field_map ~ " as m"
        ~ " left join " ~ field_map ~ " as lines on lines.platform = m.platform"
        ~ " and lines.entity = 'order' and lines.standard_field = 'line_items'"
        ~ " where m.required and coalesce(m.source_path, '') <> ''"
        ~ " and m.entity in ('order', 'order_item')"
        ~ " order by 1, 2, 3").rows -%}
    {#- One scan per platform: count(*) filter (...) per required field. -#}
    {%- set by_platform = {} -%}
    {%- for row in rows -%}
        {%- set conditions = [] -%}
        {%- for alternative in row[3].split(' | ') -%}
            {%- set p = alternative.strip().replace("'", "''") -%}
            {%- if row[1] == 'order_item' -%}
                {#- some line lacks the path: $.lines[*] ? (!exists(@.field)) -#}
                {%- do conditions.append("coalesce(jsonb_path_exists(payload, '" ~ row[4] ~ "[*] ? (!exists(@" ~ p[1:] ~ "))', silent => true), false)") -%}
            {%- else -%}
                {#- silent: an arithmetic path with an operand missing is "missing" -#}
                {%- do conditions.append("not coalesce(jsonb_path_exists(payload, '" ~ p ~ "', silent => true), false)") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do by_platform.setdefault(row[0], []).append({
            'label': "('" ~ row[1] ~ "', '" ~ row[2] ~ "', '" ~ row[3].replace("'", "''") ~ "', ",
            'condition': conditions | join(' and ')}) -%}
    {%- endfor -%}
    {%- set parts = [] -%}
    {%- for platform, checks in by_platform.items() -%}
        {%- set counts = [] -%}
        {%- set labels = [] -%}
        {%- for check in checks -%}
            {%- do counts.append("count(*) filter (where " ~ check.condition ~ ") as m" ~ loop.index) -%}
            {%- do labels.append(check.label ~ "counted.m" ~ loop.index ~ ")") -%}
        {%- endfor -%}
        {%- do parts.append(
            "select '" ~ platform ~ "'::text as platform, checks.entity, checks.standard_field, checks.source_path,"
            ~ " checks.payloads_missing from (select " ~ counts | join(', ') ~ " from ("
            ~ "select distinct on (shop_id, order_id) " ~ payload_document(platform) ~ " as payload from " ~ source('raw', 'orders')
            ~ " where platform = '" ~ platform ~ "' and " ~ recent_rows('extracted_at')
            ~ " order by shop_id, order_id, modified_at desc, extracted_at desc, payload_sha256 desc"
            ~ ") as latest) as counted"
            ~ " cross join lateral (values " ~ labels | join(', ')
            ~ ") as checks (entity, standard_field, source_path, payloads_missing)"
            ~ " where checks.payloads_missing > 0") -%}
    {%- endfor -%}
    {%- if not parts -%}
        {{ return("select null::text as platform, null::text as entity, null::text as standard_field, null::text as source_path, 0::bigint as payloads_missing where false") }}
    {%- endif -%}
    {{ return(parts | join('\nunion all\n')) }}
{% endmacro %}
