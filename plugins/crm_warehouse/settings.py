"""Where the warehouse, the CRM source and the project's local state live.

One setting names the warehouse: WAREHOUSE_DSN (a libpq URI). When it is unset the project
uses its own embedded PostgreSQL under .data/ (see embedded_postgres.py).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from crm_warehouse.errors import WarehouseError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PG_PORT = 55432
WAREHOUSE_DB = "warehouse"
SOURCE_DB = "crm"
AIRFLOW_DB = "airflow"


def data_dir() -> Path:
    return Path(os.environ.get("CRMWH_DATA_DIR", PROJECT_ROOT / ".data")).resolve()


def embedded_port() -> int:
    return int(os.environ.get("CRMWH_PG_PORT", DEFAULT_PG_PORT))


def embedded_tls() -> bool:
    """CRMWH_PG_SSL=on: the embedded server also accepts TLS (self-signed certificate) and its DSN requires it."""
    value = os.environ.get("CRMWH_PG_SSL", "off").strip().lower()
    if value not in ("on", "off"):
        raise WarehouseError(f"CRMWH_PG_SSL must be 'on' or 'off', not {value!r}.")
    return value == "on"


def uses_embedded_server() -> bool:
    return not (os.environ.get("WAREHOUSE_DSN") or airflow_connection_uri(WAREHOUSE_CONNECTION))


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials as `dsn`, another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@dataclass(frozen=True)
class Connections:
    warehouse: str
    source: str
    airflow_metadata: str


def connections() -> Connections:
    """Resolve every DSN, starting the embedded server when no warehouse is configured.

    Each comes from its environment variable, else (inside an Airflow task) from the Airflow connection
    crm_warehouse / crm_source (Connections UI, a secrets backend or AIRFLOW_CONN_CRM_WAREHOUSE), else the
    embedded server.
    """
    warehouse = os.environ.get("WAREHOUSE_DSN") or airflow_connection_uri(WAREHOUSE_CONNECTION)
    if warehouse:
        airflow_default = with_database(warehouse, AIRFLOW_DB)
    else:
        from crm_warehouse import embedded_postgres

        warehouse = embedded_postgres.ensure_running()
        airflow_default = embedded_postgres.airflow_dsn()  # its own owner, no access to the warehouse
    source = (os.environ.get("CRM_SOURCE_DSN") or airflow_connection_uri(SOURCE_CONNECTION)
              or with_database(warehouse, SOURCE_DB))
    airflow = os.environ.get("AIRFLOW_METADATA_DSN") or airflow_default
    return Connections(warehouse=warehouse, source=source, airflow_metadata=airflow)


WAREHOUSE_CONNECTION, SOURCE_CONNECTION = "crm_warehouse", "crm_source"


@functools.cache
def airflow_connection_uri(conn_id: str) -> str | None:
    """The libpq URI of Airflow connection conn_id when running inside an Airflow task and it exists."""
    if "AIRFLOW_CTX_DAG_ID" not in os.environ:  # set by Airflow's task runner for the task's duration
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    uri = connection.get_uri()
    # Airflow writes postgres://; libpq reads both, SQLAlchemy (Airflow's own metadata URL) only postgresql://
    return "postgresql://" + uri.split("://", 1)[1] if uri.startswith("postgres://") else uri


def warehouse_dsn() -> str:
    return connections().warehouse


def source_dsn() -> str:
    return connections().source


def gx_dir() -> Path:
    """The Great Expectations file context: validation results and the Data Docs site."""
    return data_dir() / "gx"


# The run-time settings an engineer tunes, with their defaults (None: off). Each is read from the environment,
# else, inside an Airflow task, from the Airflow variable of the same name: `make airflow` creates those
# variables with these defaults, so they can be changed in the UI (Admin > Variables) between runs.
TUNABLES: dict[str, tuple[str | None, str]] = {
    "CRMWH_EXTRACT_LOOKBACK_MINUTES": ("10", "Each extract re-reads this many minutes behind its watermark, for "
                                             "rows committed late; re-read rows are dropped as duplicates."),
    "CRMWH_DELETE_RECONCILE_HOURS": ("24", "Reconcile an object's keys with the source (hard-delete detection) "
                                           "when its last reconciliation is older than this; 0 = every run, "
                                           "off = never."),
    "CRMWH_DELETE_MAX_SHARE": ("0.5", "Key reconciliation refuses to tombstone more than this share of an "
                                      "object's live keys."),
    "CRMWH_SOURCE_MAX_STALENESS_HOURS": (None, "Hold every batch when the source's newest change is older than "
                                               "this many hours; empty = no check."),
    "CRMWH_AUDIT_RETENTION_MONTHS": ("13", "Months of ops.audit_log kept (at least 13)."),
}


def tunable(name: str) -> str | None:
    """A TUNABLES setting: its environment variable, else (inside an Airflow task) its Airflow variable, else
    its default. An empty value means unset."""
    value = os.environ.get(name)
    if not (value or "").strip() and "AIRFLOW_CTX_DAG_ID" in os.environ:  # set by Airflow's task runner
        from airflow.sdk import Variable

        value = Variable.get(name, default=None)
    return value.strip() if value and value.strip() else TUNABLES[name][0]


DEFAULT_DBT_DOCS_PORT = 8081


def dbt_docs_url() -> str:
    """CRMWH_DBT_DOCS_URL: where the dbt docs site is served (`make docs` serves it on port 8081); the
    Airflow UI's navigation links to it. Empty: no such link (Airflow serves the docs itself, Browse >
    "dbt docs (in Airflow)", Cosmos' view)."""
    return os.environ.get("CRMWH_DBT_DOCS_URL", f"http://127.0.0.1:{DEFAULT_DBT_DOCS_PORT}")


def source_max_staleness_hours() -> float | None:
    """CRMWH_SOURCE_MAX_STALENESS_HOURS: hold every batch when the source's newest change is older."""
    value = tunable("CRMWH_SOURCE_MAX_STALENESS_HOURS")
    return float(value) if value else None


def extract_lookback_minutes() -> float:
    """CRMWH_EXTRACT_LOOKBACK_MINUTES (default 10): each extract re-reads this far behind the watermark,
    so rows committed late with an older updated_at are not missed; re-reads are dropped as duplicates."""
    return float(tunable("CRMWH_EXTRACT_LOOKBACK_MINUTES"))


def delete_reconcile_hours() -> float | None:
    """CRMWH_DELETE_RECONCILE_HOURS (default 24): reconcile an object's keys with the source (hard-delete
    detection) when its last reconciliation is older than this; 0 = every run, `off` = never."""
    value = tunable("CRMWH_DELETE_RECONCILE_HOURS")
    if value.lower() == "off":
        return None
    hours = _number("CRMWH_DELETE_RECONCILE_HOURS", value, "a number of hours (0 = every run) or 'off'")
    if hours < 0:
        raise WarehouseError(f"CRMWH_DELETE_RECONCILE_HOURS must be 0 or more hours, or 'off', not {value!r}.")
    return hours


def delete_max_share() -> float:
    """CRMWH_DELETE_MAX_SHARE (default 0.5): key reconciliation refuses to tombstone more than this share
    of an object's live keys (a truncated or mis-pointed source must not delete the warehouse)."""
    value = tunable("CRMWH_DELETE_MAX_SHARE")
    share = _number("CRMWH_DELETE_MAX_SHARE", value, "a share between 0 and 1")
    if not 0 <= share <= 1:
        raise WarehouseError(f"CRMWH_DELETE_MAX_SHARE must be a share between 0 and 1, not {value!r}.")
    return share


def transform_retry_delay() -> timedelta:
    """CRMWH_TRANSFORM_RETRY_DELAY_SECONDS (default 60): how long a failed crm_transform task waits before its
    automatic retry. Read where the DAG file is parsed, so from the environment only (no Airflow variable)."""
    value = os.environ.get("CRMWH_TRANSFORM_RETRY_DELAY_SECONDS", "").strip() or "60"
    seconds = _number("CRMWH_TRANSFORM_RETRY_DELAY_SECONDS", value, "a number of seconds")
    if seconds < 0:
        raise WarehouseError(f"CRMWH_TRANSFORM_RETRY_DELAY_SECONDS must be 0 or more seconds, not {value!r}.")
    return timedelta(seconds=seconds)


def _number(name: str, value: str, meaning: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise WarehouseError(f"{name} must be {meaning}, not {value!r}.") from None


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """These environment variables inside the block; each one's previous value (or absence) after it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
