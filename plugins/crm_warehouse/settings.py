"""Where the warehouse, the CRM source and the project's local state live.

One setting names the warehouse: WAREHOUSE_DSN (a libpq URI). When it is unset the project
uses its own embedded PostgreSQL under .data/ (see embedded_postgres.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PG_PORT = 55432
WAREHOUSE_DB = "warehouse"
SOURCE_DB = "crm"
AIRFLOW_DB = "airflow"


def data_dir() -> Path:
    return Path(os.environ.get("CRMWH_DATA_DIR", PROJECT_ROOT / ".data")).resolve()


def embedded_port() -> int:
    return int(os.environ.get("CRMWH_PG_PORT", DEFAULT_PG_PORT))


def uses_embedded_server() -> bool:
    return not os.environ.get("WAREHOUSE_DSN")


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
    """Resolve every DSN, starting the embedded server when no warehouse is configured."""
    warehouse = os.environ.get("WAREHOUSE_DSN")
    if not warehouse:
        from crm_warehouse import embedded_postgres

        warehouse = embedded_postgres.ensure_running()
    source = os.environ.get("CRM_SOURCE_DSN") or with_database(warehouse, SOURCE_DB)
    airflow = os.environ.get("AIRFLOW_METADATA_DSN") or with_database(warehouse, AIRFLOW_DB)
    return Connections(warehouse=warehouse, source=source, airflow_metadata=airflow)


def warehouse_dsn() -> str:
    return connections().warehouse


def source_dsn() -> str:
    return connections().source


def gx_dir() -> Path:
    """The Great Expectations file context: validation results and the Data Docs site."""
    return data_dir() / "gx"


def source_max_staleness_hours() -> float | None:
    """CRMWH_SOURCE_MAX_STALENESS_HOURS: hold every batch when the source's newest change is older."""
    value = os.environ.get("CRMWH_SOURCE_MAX_STALENESS_HOURS")
    return float(value) if value else None


def extract_lookback_minutes() -> float:
    """CRMWH_EXTRACT_LOOKBACK_MINUTES (default 10): each extract re-reads this far behind the watermark,
    so rows committed late with an older updated_at are not missed; re-reads are dropped as duplicates."""
    return float(os.environ.get("CRMWH_EXTRACT_LOOKBACK_MINUTES", "10"))
