{{ stg_settlement_lines('tmall') }}
