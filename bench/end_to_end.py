"""End-to-end scenarios of `make bench`: peak memory, scaling, and the orchestration overhead of Airflow.

    PeakMemory          samples the resident memory of this process tree (the bench, dbt, airflow) and of the
                        PostgreSQL server's processes every 0.2 s
    pipeline_wall       the full initial pipeline (load, dbt core, predictive, marts write-audit-publish) on a
                        fresh warehouse, called directly: wall time per stage
    orchestrated_run    the same pipeline as `airflow dags test crm_ingest` then `crm_transform`: each DAG's wall
                        time against the sum of its task instances' durations in Airflow's metadata database
                        (`dags test` runs one task at a time, so every task is on the critical path)
    dbt_tasks_overhead  crm_transform's dbt task groups (Cosmos: one `dbt build` and a task per model) against the
                        same builds run bare, on the same warehouse, both initial builds
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from crm_warehouse import access, extract_load, settings, simulator

SAMPLE_SECONDS = 0.2


class PeakMemory:
    """Peak resident memory (bytes) of this process and its descendants, and of the postgres server processes.

    The server figure sums each backend's RSS, which counts shared buffers once per process: an upper bound.
    """

    def __init__(self) -> None:
        self.tree_peak = self.server_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict:
        return {"process_tree_peak_mb": round(self.tree_peak / 2**20), "target_process_tree_peak_mb": 2048,
                "postgres_server_peak_mb_upper_bound": round(self.server_peak / 2**20)}

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(SAMPLE_SECONDS):
            self.tree_peak = max(self.tree_peak, _rss([me, *me.children(recursive=True)]))
            server = [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("postgres", "postmaster")]
            self.server_peak = max(self.server_peak, _rss(server))


def _rss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


@contextmanager
def pointed_at(warehouse_dsn: str, source_dsn: str):
    """The package's settings (and dbt, through them) use these databases inside the block."""
    with settings.environment({"WAREHOUSE_DSN": warehouse_dsn, "CRM_SOURCE_DSN": source_dsn}):
        yield


def pipeline_wall(base_dsn: str, scale: float, seed: int = 42) -> dict:
    """Simulate at `scale` (not timed), then the full initial pipeline; seconds per stage and in total."""
    source, wh = fresh_databases(base_dsn, f"bench_scale_{_label(scale)}")
    simulator.simulate(source, scale=scale, seed=seed, quiet=True)
    with pointed_at(wh, source):
        started = time.perf_counter()
        extract_load.load_all("bench-scale")
        stages = {"load": round(time.perf_counter() - started, 2), **timed_transform("bench-scale")}
    rows, extract, gate, publish = _row(wh, "select sum(rows_published), sum(extract_seconds), sum(validate_seconds), "
                                            "sum(publish_seconds) from ops.load_batches where run_id = 'bench-scale'")
    return {"scale": scale, "rows": int(rows), "wall_seconds": round(sum(stages.values()), 2),
            "seconds": {"extract": float(extract), "load_gate": float(gate), "raw_publish": float(publish), **stages}}


def timed_transform(run_id: str, slowest: dict | None = None) -> dict[str, float]:
    """The crm_transform DAG's steps in order, as its tasks run them: seconds per step. With `slowest`, each dbt
    step's elapsed time and slowest nodes go into it (run_results.json is overwritten by the next build)."""
    from crm_warehouse import transform

    transform._PARSED.clear()  # each run parses the project once, as a `dags test` run of crm_transform does
    audit, seconds = {}, {}
    for name, step in (("dbt_core", transform.build_core), ("predictive", transform.score_customers),
                       ("dbt_marts_shadow", transform.build_marts_shadow),
                       ("marts_audit", lambda: audit.update(transform.audit_marts())),
                       ("marts_publish", lambda: transform.publish_marts(run_id, audit))):
        run_results = transform.project_dir() / "target" / "run_results.json"
        run_results.unlink(missing_ok=True)  # a core build with nothing to build runs no dbt
        started = time.perf_counter()
        step()
        seconds[name] = round(time.perf_counter() - started, 2)
        if slowest is not None and name.startswith("dbt_") and run_results.exists():
            slowest[name] = dbt_node_times(run_results)
    return seconds


def dbt_node_times(run_results: Path, top: int = 8) -> dict:
    """dbt's own elapsed time of a build, its node count and its slowest nodes (seconds)."""
    results = json.loads(run_results.read_text())
    nodes = sorted(results["results"], key=lambda r: -r["execution_time"])
    return {"elapsed_seconds": round(results["elapsed_time"], 2), "nodes": len(nodes),
            "slowest": {r["unique_id"].split(".", 2)[-1]: round(r["execution_time"], 2) for r in nodes[:top]}}


def scaling(base_dsn: str, scales: list[float], measured: dict[float, dict]) -> dict:
    """Wall time of the full pipeline at each scale and its ratio to the smallest; growth worse than linear shows
    as a time ratio above the row ratio."""
    runs = [measured[s] if s in measured else pipeline_wall(base_dsn, s) for s in scales]
    first = runs[0]
    for run in runs:
        run["row_ratio"] = round(run["rows"] / first["rows"], 2)
        run["time_ratio"] = round(run["wall_seconds"] / first["wall_seconds"], 2)
    return {"runs": runs}


def orchestrated_run(base_dsn: str, scale: float, seed: int = 42) -> dict:
    """The pipeline through Airflow (`airflow dags test`), on fresh databases, with its own Airflow home."""
    from crm_warehouse import airflow_runner, warehouse

    source, wh = fresh_databases(base_dsn, "bench_airflow_pipeline")
    metadata = fresh_database(base_dsn, "bench_airflow_metadata")
    simulator.simulate(source, scale=scale, seed=seed, quiet=True)
    with warehouse.connect(wh) as conn:
        warehouse.init_warehouse(conn)
    env = airflow_runner.airflow_env(settings.Connections(warehouse=wh, source=source, airflow_metadata=metadata))
    env["AIRFLOW_HOME"] = str(settings.data_dir() / "bench" / "airflow")
    airflow_runner.migrate_metadata(env)
    dags = {}
    for dag_id in ("crm_ingest", "crm_transform"):
        started = time.perf_counter()
        airflow_runner.dags_test(dag_id, env=env, echo=lambda _line: None)
        dags[dag_id] = _dag_figures(time.perf_counter() - started, *_dag_run_times(metadata, dag_id))
    dags["crm_transform"]["dbt_task_groups"] = {
        group: _task_group_times(metadata, "crm_transform", group) for group in ("dbt_core", "dbt_marts")}
    run = sum(d["dag_run_seconds"] for d in dags.values())
    tasks = sum(d["task_seconds"] for d in dags.values())
    process = sum(d["process_wall_seconds"] for d in dags.values())
    return {"scale": scale, "dags": dags, "dag_run_seconds": round(run, 2), "task_seconds": round(tasks, 2),
            "overhead_share": round((run - tasks) / run, 3), "target_overhead_share": 0.10,
            "process_wall_seconds": round(process, 2),
            "process_overhead_share": round((process - tasks) / process, 3)}


def _dag_figures(process_wall: float, run_seconds: float, task_seconds: float, tasks: int) -> dict:
    """Overhead = the DAG run's wall time (from its metadata) minus its task time: `dags test` runs one task at a
    time, so every task is on the critical path. The process around it (Airflow's import, DAG parsing, metadata
    set-up: ~4 s) is reported apart: a deployment pays it once in its dag-processor and scheduler, not per run."""
    return {"process_wall_seconds": round(process_wall, 2), "dag_run_seconds": round(run_seconds, 2),
            "task_seconds": round(task_seconds, 2), "task_instances": tasks,
            "overhead_seconds": round(run_seconds - task_seconds, 2),
            "overhead_share": round((run_seconds - task_seconds) / run_seconds, 3),
            "process_overhead_share": round((process_wall - task_seconds) / process_wall, 3)}


def _dag_run_times(metadata_dsn: str, dag_id: str) -> tuple[float, float, int]:
    with psycopg.connect(metadata_dsn) as conn:
        run_seconds = conn.execute(
            "select extract(epoch from end_date - start_date) from dag_run where dag_id = %s "
            "order by start_date desc limit 1", (dag_id,)).fetchone()[0]
        task_seconds, tasks = conn.execute(
            "select coalesce(sum(extract(epoch from ti.end_date - ti.start_date)), 0), count(*) "
            "from task_instance ti join dag_run r on r.dag_id = ti.dag_id and r.run_id = ti.run_id "
            "where r.dag_id = %s and r.start_date = (select max(start_date) from dag_run where dag_id = %s)",
            (dag_id, dag_id)).fetchone()
    return float(run_seconds), float(task_seconds), int(tasks)


def _task_group_times(metadata_dsn: str, dag_id: str, group: str) -> dict:
    """A task group's span in the DAG's last run (first start to last end: `dags test` runs its tasks one after
    another), its producer's own time and its task instances by state."""
    with psycopg.connect(metadata_dsn) as conn:
        rows = conn.execute(
            "select ti.task_id, ti.state, ti.start_date, ti.end_date from task_instance ti "
            "where ti.dag_id = %s and ti.task_id like %s and ti.run_id = (select run_id from dag_run where "
            "dag_id = %s order by start_date desc limit 1)", (dag_id, f"{group}.%", dag_id)).fetchall()
    ran = [(start, end) for _, _, start, end in rows if start and end]
    producer = next(end - start for task_id, _, start, end in rows if task_id == f"{group}.dbt_producer_watcher")
    states: dict[str, int] = {}
    for _, state, _, _ in rows:
        states[state] = states.get(state, 0) + 1
    return {"seconds": round((max(e for _, e in ran) - min(s for s, _ in ran)).total_seconds(), 2),
            "producer_seconds": round(producer.total_seconds(), 2), "task_instances": states}


# what dbt writes: the transformer's schemas but `ml`, the predictive step's scores, which the marts join
DBT_SCHEMAS = tuple(schema for schema in access.TRANSFORMER_SCHEMAS if schema != "ml")


def dbt_tasks_overhead(base_dsn: str, source_dsn: str, warehouse_dsn: str, scale: float) -> dict:
    """crm_transform's dbt task groups against the same two builds run bare (transform.build_core and
    build_marts_shadow, in this process), on the same warehouse and its loaded raw rows: every dbt output is
    dropped before each, so both are the initial, full builds. Bare first, then the DAG (`airflow dags test`,
    its own Airflow database), so the page cache is as warm for one as for the other."""
    from crm_warehouse import airflow_runner, transform

    _drop_dbt_outputs(warehouse_dsn)
    with pointed_at(warehouse_dsn, source_dsn):
        transform._PARSED.clear()
        started = time.perf_counter()
        transform.build_core()
        core = time.perf_counter() - started
        transform.score_customers()  # the marts join the scores; between the groups in the DAG too
        started = time.perf_counter()
        transform.build_marts_shadow()
        bare = {"dbt_core": round(core, 2), "dbt_marts": round(time.perf_counter() - started, 2)}
    _drop_dbt_outputs(warehouse_dsn)
    metadata = fresh_database(base_dsn, "bench_dbt_tasks_metadata")
    env = airflow_runner.airflow_env(settings.Connections(warehouse=warehouse_dsn, source=source_dsn,
                                                          airflow_metadata=metadata))
    env["AIRFLOW_HOME"] = str(settings.data_dir() / "bench" / "airflow-dbt-tasks")
    airflow_runner.migrate_metadata(env)
    airflow_runner.dags_test("crm_transform", env=env, echo=lambda _line: None)
    groups = {group: _task_group_times(metadata, "crm_transform", group) for group in ("dbt_core", "dbt_marts")}
    in_dag, bare_total = sum(g["seconds"] for g in groups.values()), sum(bare.values())
    return {"scale": scale, "bare_dbt_seconds": bare, "task_groups": groups,
            "task_groups_seconds": round(in_dag, 2), "overhead_share": round(in_dag / bare_total - 1, 3),
            "producers_overhead_share": round(sum(g["producer_seconds"] for g in groups.values()) / bare_total - 1, 3),
            "target_overhead_share": 0.25}


def _drop_dbt_outputs(warehouse_dsn: str) -> None:
    """Everything dbt built and the record of core builds: the next build is an initial one."""
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        for schema in DBT_SCHEMAS:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
        conn.execute("delete from ops.core_builds")


def fresh_databases(base_dsn: str, prefix: str) -> tuple[str, str]:
    return fresh_database(base_dsn, f"{prefix}_crm"), fresh_database(base_dsn, f"{prefix}_warehouse")


def fresh_database(base_dsn: str, name: str) -> str:
    with psycopg.connect(settings.with_database(base_dsn, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return settings.with_database(base_dsn, name)


def _row(dsn: str, query: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchone()


def _label(scale: float) -> str:
    return f"{scale:g}".replace(".", "_")

