{#- Stock (issue 18): the merchant SKU of an order line. The row of
    seeds/sku_mapping.csv for the line's platform SKU, else its outer id when
    that is one of the brand's codes (seeds/merchant_skus.csv); null when
    neither: the line is flagged (rpt_unmapped_skus), never dropped.
    `items`: the alias of a relation with platform, shop_id, sku_id and
    outer_sku_id; merchant_sku() is the column, after these joins. -#}
{% macro merchant_sku_joins(items) -%}
    left join {{ ref('sku_mapping') }} as sku_mapped
        on sku_mapped.platform = {{ items }}.platform
        and sku_mapped.shop_id = {{ items }}.shop_id
        and sku_mapped.sku_id = {{ items }}.sku_id
    left join {{ ref('merchant_skus') }} as sku_by_code
        on sku_by_code.merchant_sku = {{ items }}.outer_sku_id
{%- endmacro %}

{% macro merchant_sku() -%}
    coalesce(sku_mapped.merchant_sku, sku_by_code.merchant_sku)
{%- endmacro %}

{#- The lines of the order versions in `orders` (a CTE with platform,
    shop_id, order_id and payload_sha256): its columns, each line's quantity
    and its merchant SKU. -#}
{% macro merchant_sku_lines(orders) -%}
    select {{ orders }}.*, items.quantity, {{ merchant_sku() }} as merchant_sku
    from {{ orders }}
    inner join {{ ref('stg_order_items') }} as items
        on items.platform = {{ orders }}.platform
        and items.shop_id = {{ orders }}.shop_id
        and items.order_id = {{ orders }}.order_id
        and items.payload_sha256 = {{ orders }}.payload_sha256
    {{ merchant_sku_joins('items') }}
{%- endmacro %}
