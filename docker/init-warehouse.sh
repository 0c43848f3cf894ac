#!/usr/bin/env bash
# Runs once, when the postgres image initialises an empty data volume (/docker-entrypoint-initdb.d).
# Plain .sql init files cannot read the environment, so this passes the role names and passwords
# to init-warehouse.sql as psql variables.
# No `set -u`: when this file is not executable the entrypoint sources it, and -u would leak into it.
set -eo pipefail

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v warehouse_user="${WAREHOUSE_DB_USER:?}" \
    -v warehouse_password="${WAREHOUSE_DB_PASSWORD:?}" \
    -v airflow_user="${AIRFLOW_DB_USER:?}" \
    -v airflow_password="${AIRFLOW_DB_PASSWORD:?}" \
    -f /opt/crmwh/init-warehouse.sql
