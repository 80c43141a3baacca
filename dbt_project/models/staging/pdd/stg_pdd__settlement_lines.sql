{{ stg_settlement_lines('pdd') }}
