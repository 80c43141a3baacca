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

{#- Region only: province and city; street and house number never leave raw. -#}
{% macro mask_address(province, city) -%}
    nullif(concat_ws(' ', nullif(({{ province }}), ''), nullif(({{ city }}), '')), '') || ' ****'
{%- endmacro %}

{% macro pii_hash(expr) -%}
    case when nullif(({{ expr }}), '') is null then null
         else encode(sha256(convert_to('{{ env_var("ORDERHUB_PII_SALT") }}' || '|' || ({{ expr }}), 'UTF8')), 'hex') end
{%- endmacro %}
