"""Expected setup failures give one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from crm_warehouse import cli, embedded_postgres, extract_load, settings, warehouse
from crm_warehouse.errors import WarehouseError
from tests.conftest import fresh_databases, query


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crm_warehouse.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def base_env(monkeypatch_env: dict[str, str] | None = None) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("WAREHOUSE_DSN", "CRM_SOURCE_DSN")}
    env.update(monkeypatch_env or {})
    return env


def assert_one_clear_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == cli.EXIT_SETUP_ERROR, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_no_warehouse_reachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    env = base_env({"WAREHOUSE_DSN": f"postgresql://postgres@127.0.0.1:{closed_port}/warehouse"})
    result = run_cli("status", env=env)
    assert_one_clear_line(result, "Cannot connect to the warehouse", str(closed_port))


def test_wrong_password_is_reported_without_leaking_it(embedded):
    parts = urlsplit(embedded.warehouse)
    bad = urlunsplit((parts.scheme, f"postgres:wrong-secret@{parts.hostname}:{parts.port}", parts.path, "", ""))
    result = run_cli("status", env=base_env({"WAREHOUSE_DSN": bad}))
    assert_one_clear_line(result, "password authentication failed")
    assert "wrong-secret" not in result.stderr


def test_port_taken_by_another_program(tmp_path, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        monkeypatch.setenv("CRMWH_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("CRMWH_PG_PORT", str(port))
        monkeypatch.delenv("WAREHOUSE_DSN", raising=False)
        with pytest.raises(WarehouseError, match=f"Port {port} .* already in use.*CRMWH_PG_PORT"):
            embedded_postgres.ensure_running()


def test_missing_source_table(embedded):
    with warehouse.connect(embedded.warehouse) as conn:  # as crm_ingest's plan_run does before the objects
        warehouse.init_warehouse(conn)
    query(embedded.source, "create schema if not exists crm")
    query(embedded.source, "alter table if exists crm.teams rename to teams_gone")
    try:
        with pytest.raises(WarehouseError, match=r"no table crm\.teams.*source-contract"):
            extract_load.load_object("teams", "missing-table-run")
    finally:
        query(embedded.source, "alter table if exists crm.teams_gone rename to teams")


def test_loading_into_a_warehouse_nobody_initialized_says_to_run_init(embedded, monkeypatch):
    """load_object leaves the warehouse's set-up to the run (crm_ingest's plan_run, load_all): called on its own
    against a bare database it names what is missing and the command that makes it."""
    (bare,) = fresh_databases(embedded, "bare_warehouse")
    monkeypatch.setenv("WAREHOUSE_DSN", bare)
    monkeypatch.setenv("CRM_SOURCE_DSN", embedded.source)
    with pytest.raises(WarehouseError, match=r"crmwh init"):
        extract_load.load_object("teams", "bare-run")


def test_init_warns_when_airflow_shares_the_warehouse_login(embedded):
    assert cli.shared_airflow_login(embedded) is None  # the embedded server gives Airflow crm_airflow
    shared = settings.Connections(warehouse="postgresql://owner:${PASSWORD}@db:5432/warehouse", source="postgresql://db/crm",
                                  airflow_metadata="postgresql://owner:${PASSWORD}@db:5432/airflow")
    assert "own" in cli.shared_airflow_login(shared) and "owner" in cli.shared_airflow_login(shared)
