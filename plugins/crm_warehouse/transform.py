"""Run dbt against the warehouse: the same project, profile and env for the DAG, the CLI and tests."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from crm_warehouse import settings
from crm_warehouse.errors import WarehouseError

log = logging.getLogger(__name__)


def project_dir() -> Path:
    return settings.PROJECT_ROOT / "dbt_project"


def dbt_env(warehouse_dsn: str | None = None) -> dict[str, str]:
    """The env vars profiles.yml reads, derived from the warehouse DSN."""
    parts = urlsplit(warehouse_dsn or settings.warehouse_dsn())
    query = parse_qs(parts.query)
    return {
        "DBT_PG_HOST": parts.hostname or "127.0.0.1",
        "DBT_PG_PORT": str(parts.port or 5432),
        "DBT_PG_USER": unquote(parts.username or "postgres"),
        "DBT_PG_PASSWORD": unquote(parts.password or ""),
        "DBT_PG_DBNAME": parts.path.lstrip("/") or settings.WAREHOUSE_DB,
        "DBT_PG_SSLMODE": query.get("sslmode", ["prefer"])[0],
    }


def dbt_executable() -> str:
    beside_python = Path(sys.executable).parent / "dbt"
    found = str(beside_python) if beside_python.exists() else shutil.which("dbt")
    if not found:
        raise WarehouseError("dbt is not installed in this environment; run `make venv`.")
    return found


def run_dbt(*args: str, warehouse_dsn: str | None = None) -> None:
    """Run one dbt command, streaming its output to the log; raise with dbt's own summary on failure."""
    env = {**os.environ, **dbt_env(warehouse_dsn), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    command = [dbt_executable(), "--no-use-colors", *args,
               "--project-dir", str(project_dir()), "--profiles-dir", str(project_dir())]
    log.info("Running: dbt %s", " ".join(args))
    process = subprocess.Popen(command, env=env, cwd=project_dir(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip()
        log.info("dbt: %s", line)
        tail = (tail + [line])[-15:]
    if process.wait() != 0:
        failures = [t for t in tail if "ERROR" in t or "FAIL" in t or "Failure" in t] or tail[-5:]
        raise WarehouseError(f"dbt {args[0]} failed: " + " | ".join(failures))


MARTS = "path:models/marts"


def build(*, select: str | None = None, exclude: str | None = None, as_of_date: str | None = None) -> None:
    """`dbt build`, optionally of a part of the project (dbt selector syntax) as of a date."""
    args = ["build"]
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", exclude]
    if as_of_date:
        args += ["--vars", f"{{as_of_date: '{as_of_date}'}}"]
    run_dbt(*args)


def build_core(as_of_date: str | None = None) -> None:
    """Everything the marts read: staging, intermediate and the core star schema."""
    build(exclude=MARTS, as_of_date=as_of_date)


def build_marts(as_of_date: str | None = None) -> None:
    build(select=MARTS, as_of_date=as_of_date)


def score_customers(as_of_date: str | None = None) -> dict:
    """Fit the LTV and churn-risk models on the core facts; the marts join their scores (schema ml)."""
    from datetime import date

    from crm_warehouse.predictive import pipeline

    return pipeline.score(settings.warehouse_dsn(), date.fromisoformat(as_of_date) if as_of_date else None)


def build_all(as_of_date: str | None = None) -> None:
    """The crm_transform DAG's steps in one call (CLI, tests, benchmarks): core, scores, marts."""
    build_core(as_of_date)
    score_customers(as_of_date)
    build_marts(as_of_date)


def generate_docs() -> Path:
    run_dbt("docs", "generate")
    return project_dir() / "target" / "index.html"
