{#- Units and time formats: every platform's dialect becomes numeric(18,2)
    yuan and timestamptz here, and nowhere else. Money never passes a float:
    JSON numbers are read as text (->>) and cast to numeric. -#}

{% macro yuan(expr) -%}
    (nullif({{ expr }}, '')::numeric)::numeric(18, 2)
{%- endmacro %}

{% macro fen_to_yuan(expr) -%}
    ((nullif({{ expr }}, '')::numeric) / 100)::numeric(18, 2)
{%- endmacro %}

{#- "yyyy-MM-dd HH:mm:ss" in Beijing time. Empty strings and JD's "no value"
    placeholders (0001-01-01 ..., 1970-01-01 ...) become null. -#}
{% macro local_ts(expr) -%}
    case
        when nullif({{ expr }}, '') is null then null
        when {{ expr }} like '0001-01-01%' or {{ expr }} like '1970-01-01%' then null
        else ({{ expr }})::timestamp at time zone 'Asia/Shanghai'
    end
{%- endmacro %}

{#- Unix seconds; 0 means "no value". -#}
{% macro unix_ts(expr) -%}
    case when coalesce(nullif({{ expr }}, '')::bigint, 0) = 0 then null
         else to_timestamp(({{ expr }})::bigint) end
{%- endmacro %}

{#- ISO 8601 with its offset ("2026-11-11T00:12:05+08:00"): a plain JSON
    API's way (config-only sources). Without an offset it would be read in the
    session's time zone, so such a field must carry one. -#}
{% macro iso_ts(expr) -%}
    (nullif({{ expr }}, ''))::timestamptz
{%- endmacro %}
