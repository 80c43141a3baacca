{#- One row per settlement record the platforms booked, standardized: a bill
    row (one money movement) or a settle line (several components), whatever
    the platform's own shape. Components are magnitudes; settle_amount is what
    the shop received from the record, signed. A record landed again with a
    changed payload keeps its latest landing. -#}
with lines as (
    select * from {{ ref('stg_settlement_lines') }}
),

latest as (
    select
        lines.*,
        row_number() over (
            partition by platform, shop_id, settlement_line_id
            order by extracted_at desc, payload_sha256 desc
        ) as landing_rank
    from lines
),

final as (
    select
        {{ surrogate_key(['platform', 'shop_id', 'settlement_line_id']) }} as settlement_line_key,
        platform,
        shop_id,
        settlement_line_id,
        order_id,
        {{ surrogate_key(['platform', 'shop_id', 'order_id']) }} as order_key,
        order_item_id,
        raw_line_type,
        case when coalesce(refund_amount, 0) > 0 and coalesce(gross_amount, 0) = 0
             then 'refund' else 'payout' end as line_kind,
        settled_at,
        (settled_at at time zone 'Asia/Shanghai')::date as settle_date,
        order_paid_at,
        coalesce(gross_amount, 0)::numeric(18, 2) as gross_amount,
        coalesce(platform_subsidy_amount, 0)::numeric(18, 2) as platform_subsidy_amount,
        coalesce(influencer_subsidy_amount, 0)::numeric(18, 2) as influencer_subsidy_amount,
        coalesce(commission_amount, 0)::numeric(18, 2) as commission_amount,
        coalesce(service_fee_amount, 0)::numeric(18, 2) as service_fee_amount,
        coalesce(other_fee_amount, 0)::numeric(18, 2) as other_fee_amount,
        coalesce(refund_amount, 0)::numeric(18, 2) as refund_amount,
        settle_amount::numeric(18, 2) as settle_amount,
        currency,
        payload_sha256,
        extracted_at as landed_at
    from latest
    where landing_rank = 1
)

select * from final
