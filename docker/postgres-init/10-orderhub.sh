#!/bin/bash
# Runs once, when the postgres service starts on an empty volume: the
# warehouse database, its owner (the DAGs, dbt and the intake write as it)
# and the read-only BI role. airflow-init then grants that role the marts
# (orderhub.landing.BI_SQL), and nothing else: no raw payload, no ops table.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
     -v warehouse_password="$ORDERHUB_DB_PASSWORD" -v bi_password="$ORDERHUB_BI_PASSWORD" <<'SQL'
CREATE USER orderhub WITH PASSWORD :'warehouse_password';
CREATE DATABASE orderhub OWNER orderhub;
CREATE ROLE orderhub_bi LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
    PASSWORD :'bi_password';
REVOKE ALL ON DATABASE orderhub FROM PUBLIC;
GRANT CONNECT ON DATABASE orderhub TO orderhub, orderhub_bi;
SQL
