"""Inside Airflow the warehouse and the CRM source can come from Airflow connections (crm_warehouse,
crm_source) instead of environment variables: a real `airflow tasks test` of crm_ingest's first task."""

from __future__ import annotations

import subprocess

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
