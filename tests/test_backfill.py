"""A backfill through Airflow reproduces raw_crm: `airflow backfill create` over past hourly intervals.

The runs are real: the test starts Airflow (`airflow standalone`: scheduler, DAG processor, API server)
on its own metadata, source and warehouse databases of the session's embedded server, creates a
backfill of crm_ingest over the last two simulated hours, and waits for the scheduler to run it.
Each run extracts only up to the end of its interval, and together they load every source row exactly
once, as a single load would.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from crm_warehouse import airflow_runner, objects, settings, simulator, warehouse
from tests.conftest import free_port, fresh_databases, query, scalar

SIMULATED_END = datetime(2026, 6, 30, tzinfo=UTC)  # the simulator's default end of history
INTERVAL_ENDS = [datetime(2026, 6, 29, 23, tzinfo=UTC), SIMULATED_END]


def wait_for(condition, timeout: float, what: str, log_path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(3)
    tail = log_path.read_text()[-3000:] if log_path.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; Airflow log tail:\n{tail}")


def backfill_runs(meta: str) -> list[tuple]:
    return query(meta, "select run_id, state, data_interval_end from dag_run "
                       "where dag_id = 'crm_ingest' and run_type = 'backfill' order by data_interval_end")


@pytest.fixture(scope="module")
def backfilled(embedded, tmp_path_factory):
    source, wh, meta = fresh_databases(embedded, "backfill_crm", "backfill_warehouse", "backfill_airflow")
    conns = settings.Connections(warehouse=wh, source=source, airflow_metadata=meta)
    data_dir = tmp_path_factory.mktemp("backfill-data")
    log_path = data_dir / "airflow-standalone.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRMWH_DATA_DIR", str(data_dir))
        mp.setenv("WAREHOUSE_DSN", conns.warehouse)
        mp.setenv("CRM_SOURCE_DSN", conns.source)
        simulator.simulate(conns.source, scale=0.02, days=20, seed=9, quiet=True)
        port = free_port()
        env = {**airflow_runner.airflow_env(conns), "AIRFLOW__API__PORT": str(port),
               "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
               "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
               "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
               # no hourly run of its own: it would load everything up to now before the backfill
               "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
        airflow_runner.migrate_metadata(env)
        with log_path.open("w") as log_file:
            process = subprocess.Popen([airflow_runner.airflow_executable(), "standalone"], env=env,
                                       stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            registered = "select count(*) from dag where dag_id in ('crm_ingest', 'crm_transform')"
            wait_for(lambda: scalar(meta, registered) == 2, 240, "the DAG processor to register the DAGs", log_path)
            airflow(env, "dags", "pause", "crm_transform")  # the backfill is about raw_crm
            airflow(env, "backfill", "create", "--dag-id", "crm_ingest", "--max-active-runs", "1",
                    "--from-date", INTERVAL_ENDS[0].isoformat(), "--to-date", INTERVAL_ENDS[-1].isoformat())
            wait_for(lambda: len(backfill_runs(meta)) == len(INTERVAL_ENDS)
                     and all(state in ("success", "failed") for _, state, _ in backfill_runs(meta)),
                     900, "the backfill's runs to finish", log_path)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        yield type("Backfilled", (), {"conns": conns, "runs": backfill_runs(conns.airflow_metadata)})


def airflow(env: dict, *args: str) -> None:
    result = subprocess.run([airflow_runner.airflow_executable(), *args], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_every_backfill_run_succeeded(backfilled):
    assert [(end, state) for _, state, end in backfilled.runs] == [(end, "success") for end in INTERVAL_ENDS]


def test_each_run_extracted_up_to_the_end_of_its_interval(backfilled):
    wh = backfilled.conns.warehouse
    for run_id, _, interval_end in backfilled.runs:
        newest = scalar(wh, "select max(watermark_to) from ops.load_batches where run_id = %s "
                            "and batch_kind = 'extract'", (run_id,))
        assert newest is None or newest <= interval_end, run_id
    # the later interval brought changes of its own: the runs did not all load the same thing
    later = scalar(wh, "select count(*) from ops.load_batches where run_id = any(%s) and status = 'published'",
                   ([run_id for run_id, _, _ in backfilled.runs[1:]],))
    assert later > 0


def test_the_backfill_loaded_every_source_row_exactly_once(backfilled):
    source, wh = backfilled.conns.source, backfilled.conns.warehouse
    differences = {}
    for name in objects.all_objects():
        with warehouse.connect(source) as conn:
            columns = ", ".join(f'"{c.name}"' for c in warehouse.source_columns(conn, name))
        expected = Counter(r[0] for r in query(source, f"select row({columns})::text from crm.{name}"))
        loaded = Counter(r[0] for r in query(wh, f"select row({columns})::text from raw_crm.{name}"))
        loaded += Counter(r[0] for r in query(wh, f"select row({columns})::text from quarantine.{name}"))
        if loaded != expected:
            differences[name] = (sum((expected - loaded).values()), sum((loaded - expected).values()))
    assert differences == {}
    assert scalar(wh, "select count(*) from ops.batch_reconciliation where not is_reconciled") == 0
