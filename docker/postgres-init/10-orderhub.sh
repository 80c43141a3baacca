#!/bin/bash
# Creates the warehouse database and its owner next to Airflow's metadata DB.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE USER orderhub WITH PASSWORD '${ORDERHUB_DB_PASSWORD}';
CREATE DATABASE orderhub OWNER orderhub;
SQL
