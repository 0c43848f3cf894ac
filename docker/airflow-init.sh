#!/usr/bin/env bash
# The `airflow-init` service: check the settings, migrate Airflow's metadata database and create the
# admin login, then exit. Safe to run again: the migration is idempotent and an existing login is kept.
set -euo pipefail

python - <<'PY'
import os, sys
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

try:
    Fernet(os.environ["AIRFLOW__CORE__FERNET_KEY"])
except ValueError:
    sys.exit("airflow-init: AIRFLOW_FERNET_KEY in .env is not a Fernet key. Generate one with:\n"
             "  python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'")
# Compose prefers variables exported in the shell over .env, and `crmwh env` exports a localhost DSN
# for the embedded server: inside a container that would be the container itself.
for name in ("WAREHOUSE_DSN", "CRM_SOURCE_DSN", "AIRFLOW_METADATA_DSN"):
    if urlsplit(os.environ[name]).hostname in ("localhost", "127.0.0.1", "::1"):
        sys.exit(f"airflow-init: {name} points at localhost, which in a container is the container itself. "
                 f"If it comes from your shell, `unset {name}`; otherwise give the server's address in .env.")
for name in ("AIRFLOW_ADMIN_PASSWORD", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
    if os.environ[name] == "change-me":
        print(f"airflow-init: warning: {name} is still the placeholder from .env.example; "
              "replace it before going live.", file=sys.stderr)
PY

echo "airflow-init: migrating the metadata database"
airflow db migrate

echo "airflow-init: the warehouse's roles, grants, ledger and audit log"
crmwh init

echo "airflow-init: ensuring the admin login ${AIRFLOW_ADMIN_USERNAME}"
# `users create` leaves an existing user untouched and exits 0, so the login is created only once.
airflow users create \
    --username "${AIRFLOW_ADMIN_USERNAME}" \
    --password "${AIRFLOW_ADMIN_PASSWORD}" \
    --email "${AIRFLOW_ADMIN_EMAIL}" \
    --firstname Admin \
    --lastname Admin \
    --role Admin

echo "airflow-init: done"
