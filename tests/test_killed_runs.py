"""A run killed mid-batch leaves the batch wholly present or wholly absent, and the next run completes it.

No mocks: the load runs in a subprocess (as an Airflow task would), the test holds a lock from its
own connection so the load blocks at a chosen point, waits until PostgreSQL shows the load waiting
on that lock, kills the process with SIGKILL, releases the lock and waits for the killed backends to
go away (PostgreSQL rolls back the open transaction when it notices the client is gone). Then it
checks what is left and runs the load again with the same run id (an Airflow retry).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

import crm_warehouse
from crm_warehouse import extract_load, objects, settings, simulator, warehouse
from tests.conftest import fresh_databases, query, scalar

SCALE = 0.03
OBJECT, KEY = "web_sessions", "session_id"  # the biggest object at this scale
LOAD = "import sys; from crm_warehouse import extract_load; extract_load.load_object(sys.argv[1], sys.argv[2])"


@pytest.fixture(scope="module")
def killed(embedded):
    source, wh = fresh_databases(embedded, "killed_crm", "killed_warehouse")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", wh)
        mp.setenv("CRM_SOURCE_DSN", source)
        simulator.simulate(source, scale=SCALE, seed=31, quiet=True)
        with warehouse.connect(wh) as conn:  # what crm_ingest's plan_run does before the objects' tasks
            warehouse.init_warehouse(conn)
        for tier in objects.load_tiers():
            for name in tier:
                if name in ancestors(OBJECT) | {OBJECT}:
                    extract_load.load_object(name, "initial")
        yield type("Killed", (), {"source": source, "warehouse": wh})


def ancestors(name: str) -> set[str]:
    parents = objects.get(name).parents
    return parents.union(*(ancestors(parent) for parent in parents))


def touch_every_row(source: str) -> int:
    """Every row changes (in the simulator's time), so the next batch holds the whole table."""
    return len(query(source, f"update crm.{OBJECT} set updated_at = (select max(updated_at) + interval '1 second' "
                             f"from crm.{OBJECT}) returning 1"))


def start_load(run_id: str, log: Path) -> subprocess.Popen:
    plugins = Path(crm_warehouse.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), str(settings.PROJECT_ROOT)])}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-c", LOAD, OBJECT, run_id], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def loader_backends(killed) -> list[int]:
    """The backends of the loading process (the only `crmwh` connections to these two databases)."""
    return [r[0] for r in query(killed.warehouse, "select pid from pg_stat_activity where application_name = 'crmwh' "
                                                  "and datname in ('killed_warehouse', 'killed_crm')")]


def wait_until_blocked_by(killed, process: subprocess.Popen, log: Path, blocker: psycopg.Connection) -> int:
    """The pid of the loader's backend once it waits for a lock the blocker holds."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the load ended before it blocked: {log.read_text()}")
        rows = query(killed.warehouse, "select pid from pg_stat_activity where application_name = 'crmwh' "
                                       "and wait_event_type = 'Lock' and %s = any(pg_blocking_pids(pid))",
                     (blocker.info.backend_pid,))
        if rows:
            return rows[0][0]
        time.sleep(0.2)
    pytest.fail("the load never blocked")


def held_locks(killed, pid: int) -> set[tuple[str, str]]:
    return set(query(killed.warehouse, "select relation::regclass::text, mode from pg_locks "
                                       "where pid = %s and granted and relation is not null", (pid,)))


def kill_and_wait(killed, process: subprocess.Popen, backends: list[int], release) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    release()  # the backend gets its lock, finishes its statement and finds its client gone
    deadline = time.monotonic() + 60
    while query(killed.warehouse, "select pid from pg_stat_activity where pid = any(%s)", (backends,)):
        assert time.monotonic() < deadline, "the killed load's backends did not go away"
        time.sleep(0.1)


def versions(dsn: str, schema: str) -> Counter:
    return Counter(query(dsn, f"select {KEY}, updated_at from {schema}.{OBJECT}"))


def assert_completed(killed, run_id: str, raw_before: Counter) -> None:
    """A new load of the same run publishes exactly the changed source rows, once."""
    result = extract_load.load_object(OBJECT, run_id)
    source = versions(killed.source, "crm")
    raw = versions(killed.warehouse, "raw_crm")
    assert result.status == "published"
    assert raw == raw_before + source  # every source version once, nothing doubled, nothing else added
    assert query(killed.warehouse, "select rows_extracted, rows_published, rows_quarantined from ops.load_batches "
                                   "where batch_id = %s", (result.batch_id,)) == [(len(source), len(source), 0)]
    assert query(killed.warehouse, "select batch_id, status, is_reconciled from ops.batch_reconciliation "
                                   "where is_reconciled is not true") == []
    assert scalar(killed.warehouse, f"select count(*) from landing.{OBJECT}") == 0
    assert scalar(killed.warehouse, "select watermark from ops.watermarks where object_name = %s",
                  (OBJECT,)) == scalar(killed.source, f"select max(updated_at) from crm.{OBJECT}")


def test_a_load_killed_while_publishing_publishes_nothing_and_the_retry_completes_it(killed, tmp_path):
    wh = killed.warehouse
    rows = touch_every_row(killed.source)
    raw_before = versions(wh, "raw_crm")
    watermark = scalar(wh, "select watermark from ops.watermarks where object_name = %s", (OBJECT,))
    # the publish's last step moves the watermark: holding the object's row blocks it after raw is written
    blocker = psycopg.connect(wh)
    blocker.execute("select * from ops.watermarks where object_name = %s for update", (OBJECT,))
    process = start_load("killed-publish", tmp_path / "load.log")
    try:
        pid = wait_until_blocked_by(killed, process, tmp_path / "load.log", blocker)
        assert (f"raw_crm.{OBJECT}", "RowExclusiveLock") in held_locks(killed, pid)  # raw rows written, uncommitted
        backends = loader_backends(killed)
        kill_and_wait(killed, process, backends, blocker.rollback)
    finally:
        process.kill()
        blocker.close()

    batch_id, status, extracted, published = query(
        wh, "select batch_id, status, rows_extracted, rows_published from ops.load_batches "
            "where run_id = 'killed-publish'")[0]
    assert (status, extracted, published) == ("landed", rows, 0)  # landed, never published
    assert scalar(wh, f"select count(*) from raw_crm.{OBJECT} where _batch_id = %s", (batch_id,)) == 0
    assert versions(wh, "raw_crm") == raw_before
    assert scalar(wh, "select watermark from ops.watermarks where object_name = %s", (OBJECT,)) == watermark

    assert_completed(killed, "killed-publish", raw_before)
    assert query(wh, "select status from ops.load_batches where batch_id = %s", (batch_id,)) == [("failed",)]
    assert scalar(wh, f"select count(*) from raw_crm.{OBJECT} where _batch_id = %s", (batch_id,)) == 0


def test_a_load_killed_while_extracting_leaves_no_batch_and_the_retry_completes_it(killed, tmp_path):
    wh = killed.warehouse
    touch_every_row(killed.source)
    raw_before = versions(wh, "raw_crm")
    batches_before = scalar(wh, "select count(*) from ops.load_batches")
    # first the copy into landing waits; once it does, quarantine is locked too and landing released,
    # so the extract copies every row and then blocks dropping re-reads (which reads quarantine)
    landing, quarantine = psycopg.connect(wh), psycopg.connect(wh)
    landing.execute(f"lock table landing.{OBJECT} in share mode")
    process = start_load("killed-extract", tmp_path / "load.log")
    try:
        wait_until_blocked_by(killed, process, tmp_path / "load.log", landing)
        quarantine.execute(f"lock table quarantine.{OBJECT} in access exclusive mode")
        landing.rollback()
        pid = wait_until_blocked_by(killed, process, tmp_path / "load.log", quarantine)
        assert (f"landing.{OBJECT}", "RowExclusiveLock") in held_locks(killed, pid)  # rows copied, uncommitted
        backends = loader_backends(killed)
        kill_and_wait(killed, process, backends, quarantine.rollback)
    finally:
        process.kill()
        landing.close()
        quarantine.close()

    assert scalar(wh, "select count(*) from ops.load_batches where run_id = 'killed-extract'") == 0
    assert scalar(wh, "select count(*) from ops.load_batches") == batches_before
    assert scalar(wh, f"select count(*) from landing.{OBJECT}") == 0
    assert versions(wh, "raw_crm") == raw_before

    assert_completed(killed, "killed-extract", raw_before)
