"""Inside Airflow the warehouse and the CRM source can come from Airflow connections (crm_warehouse,
crm_source) instead of environment variables: a real `airflow tasks test` of crm_ingest's first task."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import urlsplit

from crm_warehouse import airflow_runner, settings
from tests.conftest import fresh_databases, query, scalar


def test_a_task_reads_the_warehouse_and_source_from_airflow_connections(embedded):
    source, wh = fresh_databases(embedded, "conn_crm", "conn_wh")
    # the run's cutoff is the source's clock: this source tells its own by its time zone
    query(source, "alter database conn_crm set timezone = 'Pacific/Kiritimati'")
    env = airflow_runner.airflow_env(embedded)
    airflow_runner.migrate_metadata(env)
    for name in ("WAREHOUSE_DSN", "CRM_SOURCE_DSN"):
        env.pop(name)
    env["AIRFLOW_CONN_CRM_WAREHOUSE"] = wh
    env["AIRFLOW_CONN_CRM_SOURCE"] = source
    result = subprocess.run([airflow_runner.airflow_executable(), "tasks", "test", "crm_ingest", "plan_run"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # plan_run prepared the warehouse the connection names: a fresh database nothing else touched
    assert scalar(wh, "select count(*) from ops.audit_log where action = 'role_change'") > 0
    assert "+14:00" in result.stdout + result.stderr  # the cutoff plan_run returned came from conn_crm


def test_outside_airflow_no_connection_is_looked_up(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    assert settings.airflow_connection_uri("crm_warehouse") is None


def test_make_airflow_seeds_connections_and_variables_and_tasks_read_them(embedded, tmp_path):
    """`make airflow` sets the connections to the project's DSNs at every start, creates the variables of
    settings.TUNABLES once (a value edited since is kept), and a task then works from them: a retention below
    the audit log's minimum set as a variable stops crm_ingest's first task."""
    source, wh = fresh_databases(embedded, "seed_crm", "seed_wh")
    conns = settings.Connections(warehouse=wh, source=source, airflow_metadata=embedded.airflow_metadata)
    env = airflow_runner.airflow_env(embedded)
    airflow_runner.migrate_metadata(env)
    meta = embedded.airflow_metadata
    try:
        airflow_runner.seed_connections_and_variables(env, conns)

        server = urlsplit(wh)
        assert query(meta, "select conn_id, conn_type, host, port, schema from connection "
                           "where conn_id in ('crm_warehouse', 'crm_source') order by 1") == [
            ("crm_source", "postgres", server.hostname, server.port, "seed_crm"),
            ("crm_warehouse", "postgres", server.hostname, server.port, "seed_wh")]
        # Airflow encrypts the values with its Fernet key: read them back through Airflow
        assert airflow_variables(env, tmp_path) == {name: default or "" for name, (default, _) in
                                                    settings.TUNABLES.items()}

        airflow(env, "variables", "set", "CRMWH_AUDIT_RETENTION_MONTHS", "5")  # as an edit in the UI
        moved = settings.Connections(warehouse=settings.with_database(wh, "seed_wh_moved"), source=source,
                                     airflow_metadata=conns.airflow_metadata)  # e.g. another port, or TLS
        airflow_runner.seed_connections_and_variables(env, moved)
        assert airflow_variables(env, tmp_path)["CRMWH_AUDIT_RETENTION_MONTHS"] == "5"
        assert scalar(meta, "select schema from connection where conn_id = 'crm_warehouse'") == "seed_wh_moved"
        airflow_runner.seed_connections_and_variables(env, conns)

        for name in ("WAREHOUSE_DSN", "CRM_SOURCE_DSN", "CRMWH_AUDIT_RETENTION_MONTHS"):
            env.pop(name, None)
        result = subprocess.run([airflow_runner.airflow_executable(), "tasks", "test", "crm_ingest", "plan_run"],
                                env=env, capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr  # `tasks test` exits 0 when the task fails
        assert "Task failed" in output and "CRMWH_AUDIT_RETENTION_MONTHS is 5" in output
    finally:  # the session's other DAG runs share this metadata database
        query(meta, "delete from variable where key like 'CRMWH%'")
        query(meta, "delete from connection where conn_id in ('crm_warehouse', 'crm_source')")


def airflow(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([airflow_runner.airflow_executable(), *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def airflow_variables(env: dict[str, str], folder) -> dict[str, str]:
    airflow(env, "variables", "export", str(folder / "variables.json"))
    exported = json.loads((folder / "variables.json").read_text())
    values = {key: value["value"] if isinstance(value, dict) else value for key, value in exported.items()}
    return {key: str(value) for key, value in values.items() if key.startswith("CRMWH_")}  # export parses 10
