{#- Personal data leaves staging only masked or hashed; clear text stays in raw.
    Masks follow the platforms' own style (张*, 138****1234); the hash is salted
    with ORDERHUB_PII_SALT (configuration, never code) for joins across orders. -#}

{% macro mask_name(expr) -%}
    case when nullif(({{ expr }}), '') is null then null
         else left(({{ expr }}), 1) || repeat('*', greatest(char_length(({{ expr }})) - 1, 1)) end
{%- endmacro %}

{% macro mask_phone(expr) -%}
    case when nullif(({{ expr }}), '') is null then null
         when ({{ expr }}) ~ '^[0-9]{7,}$' then left(({{ expr }}), 3) || '****' || right(({{ expr }}), 4)
         else regexp_replace(({{ expr }}), '[0-9]', '*', 'g') end
{%- endmacro %}

{#- The salt is a setting of the session (orderhub.pii_salt, which dbt's
    connections get from libpq's PGOPTIONS: orderhub.transform.dbt_env), not
    text in the SQL: it is in no view definition, no compiled file, no log.
    A session without it fails here rather than hash unsalted. -#}
{% macro pii_hash(expr) -%}
    case when nullif(({{ expr }}), '') is null then null
         else encode(sha256(convert_to(current_setting('orderhub.pii_salt') || '|' || ({{ expr }}), 'UTF8')), 'hex') end
{%- endmacro %}
