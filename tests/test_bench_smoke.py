"""The benchmark harness runs end to end at a tiny scale (no timing assertions: figures are for make bench)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from crm_warehouse import dbt_tasks, settings

TIMEOUT_SECONDS = 1500  # 12 min on a 2-core machine (2026-12-04); two thirds of it in three `airflow dags test` runs


def test_quick_benchmark_writes_its_results(embedded):
    returncode, stderr = _run_quick_bench()
    assert returncode == 0, stderr[-2000:]
    out = sorted((settings.data_dir() / "bench").glob("*-0.02.json"))[-1]
    figures = json.loads(out.read_text())
    assert figures["raw_load"]["project"]["rows"] == figures["raw_load"]["copy_baseline"]["rows"] > 0
    assert figures["simulator"]["rows"] == figures["raw_load"]["project"]["rows"]
    assert 0 < figures["gate"]["share_of_load_wall_time"] < 1
    assert len(figures["queries"]["queries"]) == 10
    assert set(figures["transform"]["seconds"]) == {"dbt_core", "predictive", "dbt_marts_shadow", "marts_audit",
                                                    "marts_publish"}
    for step in ("dbt_core", "dbt_marts_shadow"):  # dbt's own time and slowest nodes of each build
        dbt = figures["transform"]["dbt"][step]
        assert 0 < dbt["elapsed_seconds"] < figures["transform"]["seconds"][step] and dbt["nodes"] > 8
        assert len(dbt["slowest"]) == 8
    assert 0 < figures["validation"]["share_of_pipeline_wall_time"] < 1
    other = figures["raw_load"]["other_tools"]
    assert other["pandas"]["rows"] == other["dlt"]["rows"] == other["project"]["rows"] == other["copy_baseline"]["rows"]
    assert other["project"]["rows"] == figures["raw_load"]["project"]["rows"]  # every table is small at this scale
    assert [run["scale"] for run in figures["scaling"]["runs"]] == [0.01, 0.02]
    assert figures["scaling"]["runs"][0]["rows"] < figures["scaling"]["runs"][1]["rows"]
    for run in figures["scaling"]["runs"]:
        assert {"extract", "load_gate", "raw_publish", "dbt_core", "predictive", "marts_audit"} <= set(run["seconds"])
    assert 0 < figures["memory"]["process_tree_peak_mb"] < 4096
    orchestration = figures["orchestration"]["dags"]
    assert orchestration["crm_ingest"]["task_instances"] > 20  # one load task per CRM object, and more
    for dag in orchestration.values():  # tasks run inside the DAG run, which runs inside the `dags test` process
        assert 0 < dag["task_seconds"] <= dag["dag_run_seconds"] < dag["process_wall_seconds"]
    models = sum(node["resource_type"] == "model" for node in json.loads(dbt_tasks.render_manifest().read_text())[
        "nodes"].values())
    dbt_tasks_figures = figures["dbt_tasks"]
    for groups in (orchestration["crm_transform"]["dbt_task_groups"], dbt_tasks_figures["task_groups"]):
        # first, full builds: every model's task succeeded after its group's dbt build (producer, its _done task)
        assert sum(group["task_instances"]["success"] for group in groups.values()) == models + 4
        assert all(set(group["task_instances"]) == {"success"} for group in groups.values())
        assert all(0 < group["producer_seconds"] < group["seconds"] for group in groups.values())
    assert dbt_tasks_figures["task_groups_seconds"] == round(
        sum(g["seconds"] for g in dbt_tasks_figures["task_groups"].values()), 2)
    assert set(dbt_tasks_figures["bare_dbt_seconds"]) == {"dbt_core", "dbt_marts"}
    assert dbt_tasks_figures["scale"] == figures["scale"]


def _run_quick_bench() -> tuple[int, str]:
    """`bench/run.py --quick` in its own process group: on a timeout the whole group is killed (the `airflow dags
    test` processes too, whose open transactions would hold back later tests) and the failure shows the bench's
    progress lines and the end of the newest Airflow log."""
    process = subprocess.Popen([sys.executable, str(settings.PROJECT_ROOT / "bench" / "run.py"), "--quick"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        logs = sorted((settings.data_dir() / "logs").glob("*.log"), key=lambda path: path.stat().st_mtime)
        newest = f"\n{logs[-1]}:\n" + "".join(logs[-1].read_text().splitlines(True)[-40:]) if logs else ""
        pytest.fail(f"bench --quick ran over {TIMEOUT_SECONDS} s; its progress:\n{stderr[-3000:]}{newest}")
    return process.returncode, stderr
