{#- rpt_oversell_risk (issue 18): the merchant SKUs at risk of selling a unit
    twice, now:

    * offered_beyond_available: the channels together offer more than may be
      sold (marts.stock_offers against marts.stock_positions);
    * sells_out_within_hour: at the last hour's sales rate, what may be sold
      is gone within the hour;
    * oversold_now: more held and reserved than on hand already.

    "The last hour" is the hour before the newest order creation seen live
    (now, for a live shop; a sandbox world's own time otherwise). -#}
with positions as (
    select * from {{ ref('stock_positions') }}
),

offers as (
    select merchant_sku, sum(offered) as offered, count(*) as channels,
           max(listed_at) as listed_at
    from {{ ref('stock_offers') }}
    where merchant_sku is not null
    group by merchant_sku
),

-- Named columns only: the view's buyer_key needs the hash salt, a setting of
-- dbt's sessions only, which a BI session reading this report has not got.
live as (
    select platform, shop_id, order_id, payload_sha256, created_at, order_status_code
    from {{ ref('int_live_order_versions') }}
),

recent as (
    select * from live
    where created_at > (select max(created_at) from live) - interval '1 hour'
        and order_status_code <> 50
),

recent_lines as (
    {{ merchant_sku_lines('recent') }}
),

sales as (
    select merchant_sku, sum(quantity) as sold_last_hour
    from recent_lines
    group by merchant_sku
),

judged as (
    select
        positions.merchant_sku,
        positions.title,
        positions.on_hand,
        positions.available_to_sell,
        positions.oversold,
        coalesce(offers.offered, 0) as offered,
        coalesce(offers.channels, 0) as channels,
        offers.listed_at,
        coalesce(sales.sold_last_hour, 0) as sold_last_hour,
        case when sales.sold_last_hour > 0
             then round(positions.available_to_sell * 60.0 / sales.sold_last_hour, 1)
        end as minutes_to_sell_out
    from positions
    left join offers using (merchant_sku)
    left join sales using (merchant_sku)
),

final as (
    select
        judged.*,
        offered > available_to_sell as offered_beyond_available,
        sold_last_hour > 0 and sold_last_hour >= available_to_sell as sells_out_within_hour,
        oversold > 0 as oversold_now
    from judged
)

-- a SKU no warehouse counted has no position to judge (all three are null)
select * from final
where offered_beyond_available or sells_out_within_hour or oversold_now
