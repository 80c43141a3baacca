{{ stg_settlement_lines('douyin') }}
