{{ stg_settlement_lines('jd') }}
