"""`make bench`: the pipeline measured against baselines run in the same process on the same server.

Scenarios measured so far (the rest of issue 6 builds on this harness):
  simulator   rows/s written by `simulate` at the given scale
  raw_load    the project's extract + land + publish of every CRM object (gate excluded) against a plain
              `COPY ... TO STDOUT` piped into `COPY ... FROM STDIN` of the same rows into the same DDL, and on
              the tables of at most BASELINE_MAX_ROWS rows against pandas read_sql + to_sql and dlt
              (bench/baselines.py)
  gate        GX validation time of every batch, as a share of extract + gate + publish
  transform   wall time of the three transform steps (dbt core build, predictive scores, dbt marts build)
  memory      peak resident memory of the process tree during the full run (bench/end_to_end.py)
  scaling     the full run's wall time at scales 1, 3 and 10, with ratios to scale 1
  orchestration  the pipeline at scale 1 as `airflow dags test` of both DAGs: DAG run time against task time
  queries     ten typical dashboard queries on the marts: p50 / p95 over repeated runs (target p95 <= 50 ms)
  incremental the pipeline after `advance --days 1` (target <= 10% of the full run's wall time) and with
              nothing new (target <= 5%; crm_transform is not triggered then), per stage

Writes bench/results/<date>-<scale>.json and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import baselines
import end_to_end
import psycopg

from crm_warehouse import extract_load, objects, settings, simulator, warehouse

ROOT = Path(__file__).resolve().parents[1]
BENCH_SOURCE_DB = "bench_crm"
BENCH_WAREHOUSE_DB = "bench_warehouse"
SCALES = (1.0, 3.0, 10.0)  # the scaling scenario; the smallest also runs through Airflow
QUICK_SCALES = [0.01, 0.02]
STARTED = time.perf_counter()
BASELINE_MAX_ROWS = 1_000_000  # pandas and dlt move the tables up to this size (at scale 10: all but three)
QUERY_REPEATS = 30
DASHBOARD_QUERIES = {
    "ltv_by_value_tier": "select value_tier, customers, net_revenue_reporting, average_clv_12m "
                         "from marts.mart_customer_value_tiers order by tier_order",
    "top_customers_by_clv": "select customer_id, clv_12m, p_alive from marts.mart_customer_ltv "
                            "order by clv_12m desc nulls last limit 100",
    "churn_by_month": "select month_start_date, customers_at_start, churned_customers, churn_rate "
                      "from marts.mart_churn_monthly order by month_start_date",
    "high_risk_at_risk_customers": "select customer_id, days_since_last_order, churn_risk_score "
                                   "from marts.mart_customer_churn where churn_status = 'at_risk' "
                                   "and churn_risk_band = 'high' order by churn_risk_score desc limit 200",
    "funnel_by_channel": "select dimension_value, stage_name, deals_reached, stage_to_won_rate "
                         "from marts.mart_funnel_conversion where dimension = 'source_channel' "
                         "order by dimension_value, stage_order",
    "cohort_matrix": "select cohort_month, months_since_first_order, active_share "
                     "from marts.mart_cohort_retention where cohort_month >= "
                     "(select max(cohort_month) from marts.mart_cohort_retention) - interval '24 months'",
    "mrr_bridge_by_month": "select month_start_date, new_mrr_reporting, expansion_mrr_reporting, "
                           "contraction_mrr_reporting, churned_mrr_reporting, ending_mrr_reporting "
                           "from marts.mart_revenue_retention_monthly order by 1",
    "pipeline_last_90_days": "select date_day, stage_name, open_amount_reporting from marts.mart_pipeline_daily "
                             "where date_day > (select max(date_day) from marts.mart_pipeline_daily) - 90",
    "rfm_segments": "select rfm_segment, customers, average_monetary_net_revenue_reporting "
                    "from marts.mart_rfm_segments order by customers desc",
    "ltv_to_cac_by_channel": "select acquisition_channel, months_since_acquisition, avg(ltv_to_cac_ratio) "
                             "from marts.mart_ltv_cohorts where has_cac group by 1, 2",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="a tiny scale: checks the harness works")
    args = parser.parse_args()
    scale = 0.02 if args.quick else args.scale
    base = settings.warehouse_dsn()
    source_dsn = end_to_end.fresh_database(base, BENCH_SOURCE_DB)
    warehouse_dsn = end_to_end.fresh_database(base, BENCH_WAREHOUSE_DB)

    results = {"scale": scale, "quick": args.quick, "measured_at": datetime.now(UTC).isoformat(),
               "machine": _machine(), "server_version": _server_version(base)}
    _progress(f"simulating scale {scale:g}")
    results["simulator"] = bench_simulator(source_dsn, scale)
    # paid once per process, not a stage's work: 2-4 s with the venv's files in the page cache, 9 s without,
    # and 18 s inside the first object's gate in one bench run right after `make venv` reinstalled packages
    import great_expectations  # noqa: F401
    _progress("COPY baseline, then the full run (load, transform)")
    copy_tables = baselines.copy_pipe(source_dsn, warehouse_dsn)
    with end_to_end.PeakMemory() as memory:  # the full initial run: load and transform
        results["raw_load"], results["gate"], ledger = bench_raw_load(source_dsn, warehouse_dsn, copy_tables)
        results["transform"] = bench_transform("bench")
    results["memory"] = memory.figures()
    results["validation"] = validation_share(results["gate"], results["transform"])
    _progress("dashboard queries")
    results["queries"] = bench_queries(warehouse_dsn)
    full_wall = results["validation"]["pipeline_wall_seconds"]
    # before the incremental scenario advances the source: the same rows as copy_pipe and the project
    _progress("pandas and dlt baselines")
    results["raw_load"]["other_tools"] = bench_other_tools(source_dsn, warehouse_dsn, copy_tables, ledger)
    _progress("incremental: one day, nothing new, a second day")
    results["incremental"] = bench_incremental(source_dsn, warehouse_dsn, full_wall)
    this_run = {"scale": scale, "rows": results["raw_load"]["project"]["rows"], "wall_seconds": full_wall,
                "seconds": _full_run_stages(_load_stages(warehouse_dsn, "bench"), results)}
    scales = QUICK_SCALES if args.quick else sorted({*SCALES, scale})
    _progress(f"scaling: full runs at scales {scales}")
    results["scaling"] = end_to_end.scaling(base, scales, {scale: this_run})
    _progress(f"orchestration: airflow dags test at scale {scales[0]:g}")
    results["orchestration"] = end_to_end.orchestrated_run(base, scales[0])
    _progress("dbt task groups against bare dbt builds")
    results["dbt_tasks"] = end_to_end.dbt_tasks_overhead(base, source_dsn, warehouse_dsn, scale)
    _write(results)


def _progress(scenario: str) -> None:
    """A line on stderr as each scenario starts: a scale-10 run takes about 20 min (and a stuck one shows where)."""
    print(f"bench +{time.perf_counter() - STARTED:.0f}s: {scenario}", file=sys.stderr, flush=True)


def _full_run_stages(load: dict, results: dict) -> dict:
    return {"extract": load["extract_seconds"], "load_gate": load["gate_seconds"],
            "raw_publish": load["publish_seconds"], "load": results["gate"]["wall_seconds"],
            **results["transform"]["seconds"]}


def bench_simulator(source_dsn: str, scale: float) -> dict:
    started = time.perf_counter()
    counts = simulator.simulate(source_dsn, scale=scale, seed=42, quiet=True)
    seconds = time.perf_counter() - started
    rows = sum(counts.values())
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds),
            "target_rows_per_second": 100_000}


def bench_raw_load(source_dsn: str, warehouse_dsn: str, copy_tables: dict) -> tuple[dict, dict, dict]:
    """The project's load of the rows copy_pipe moved, against it; the ledger's figures per table."""
    import os

    os.environ["WAREHOUSE_DSN"], os.environ["CRM_SOURCE_DSN"] = warehouse_dsn, source_dsn
    wall = _load_all("bench")
    with warehouse.connect(warehouse_dsn) as wh:
        ledger = {name: (int(rows), float(extract_s + publish_s), float(validate_s)) for name, rows, extract_s,
                  publish_s, validate_s in wh.execute(
                      "select object_name, rows_published, extract_seconds, publish_seconds, validate_seconds "
                      "from ops.load_batches where run_id = 'bench'").fetchall()}
        raw_bytes = wh.execute(
            "select sum(pg_total_relation_size(c.oid)) from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where n.nspname = 'raw_crm' and c.relkind = 'r'").fetchone()[0]
    baseline = baselines.total(copy_tables, objects.all_objects())
    project = {**_project_figures(ledger, copy_tables, objects.all_objects()), "raw_crm_bytes_on_disk": int(raw_bytes)}
    raw_load = {"copy_baseline": baseline, "project": project,
                "ratio_to_copy": round(project["rows_per_second"] / baseline["rows_per_second"], 3),
                "target_ratio_to_copy": 0.7}
    validate_s = sum(v for _, _, v in ledger.values())
    gate = {"validate_seconds": round(validate_s, 2), "wall_seconds": round(wall, 2),
            "share_of_load_wall_time": round(validate_s / wall, 3)}
    return raw_load, gate, ledger


def bench_other_tools(source_dsn: str, warehouse_dsn: str, copy_tables: dict, ledger: dict) -> dict:
    """pandas and dlt against the project on the same tables (every table of at most BASELINE_MAX_ROWS rows)."""
    tables = [n for n in objects.all_objects() if copy_tables[n]["rows"] <= BASELINE_MAX_ROWS]
    copy = baselines.total(copy_tables, tables)
    project = _project_figures(ledger, copy_tables, tables)
    pandas = baselines.pandas_read_sql_to_sql(source_dsn, warehouse_dsn, tables, copy["bytes"])
    dlt = baselines.dlt_sql_database(source_dsn, warehouse_dsn, tables, copy["bytes"],
                                     str(settings.data_dir() / "bench" / "dlt"))
    return {"tables": tables, "copy_baseline": copy, "project": project, "pandas": pandas, "dlt": dlt,
            "project_vs_pandas": round(project["rows_per_second"] / pandas["rows_per_second"], 1),
            "target_vs_pandas": 10,
            "project_vs_dlt": round(project["rows_per_second"] / dlt["rows_per_second"], 1), "target_vs_dlt": 4}


def _project_figures(ledger: dict, copy_tables: dict, tables: list[str]) -> dict:
    """The project's extract + land + publish time (gate excluded) of some tables, from its load ledger; MB/s over
    the rows' COPY text size, as for the baselines."""
    return baselines.figures(sum(ledger[n][0] for n in tables), sum(copy_tables[n]["bytes"] for n in tables),
                             sum(ledger[n][1] for n in tables))


def _load_all(run_id: str) -> float:
    started = time.perf_counter()
    extract_load.load_all(run_id)
    return time.perf_counter() - started


def bench_incremental(source_dsn: str, warehouse_dsn: str, full_wall: float) -> dict:
    """One simulated day loaded and transformed, then a run with nothing new, against the full run; then a second
    day. The first day follows the initial load (much of the warehouse is not in memory yet: its time moves with
    the machine's page cache); the second is a day like every later one. Before the first day the warehouse is
    vacuumed (not timed in either run), as autovacuum has done long before a run a day after the initial load:
    right after it, autovacuum is still working through the freshly written tables, and each incremental model
    whose statistics the run writes waited 1 s (deadlock_timeout) for that vacuum to be cancelled."""
    vacuum_seconds = _vacuum(warehouse_dsn)
    day = _one_day(source_dsn, warehouse_dsn, "bench-day")
    nothing = {"load_wall_seconds": round(_load_all("bench-nothing"), 2),
               **_load_stages(warehouse_dsn, "bench-nothing")}
    nothing["wall_seconds"] = nothing["load_wall_seconds"]  # no raw asset event: crm_transform does not run
    second = _one_day(source_dsn, warehouse_dsn, "bench-day-2")
    return {"full_run_wall_seconds": full_wall, "vacuum_before_first_day_seconds": vacuum_seconds,
            "one_day": {**day, "share_of_full_run": round(day["wall_seconds"] / full_wall, 3), "target_share": 0.10},
            "nothing_new": {**nothing, "share_of_full_run": round(nothing["wall_seconds"] / full_wall, 3),
                            "target_share": 0.05},
            "second_day": {**second, "share_of_full_run": round(second["wall_seconds"] / full_wall, 3),
                           "target_share": 0.10}}


def _vacuum(warehouse_dsn: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(warehouse_dsn, autocommit=True) as wh:
        wh.execute("vacuum")
    return round(time.perf_counter() - started, 2)


def _one_day(source_dsn: str, warehouse_dsn: str, run_id: str) -> dict:
    source_rows = simulator.advance(source_dsn, days=1, quiet=True)
    day = {"load_wall_seconds": round(_load_all(run_id), 2), **_load_stages(warehouse_dsn, run_id)}
    day["transform"] = bench_transform(run_id)
    day["source_rows_changed"] = sum(source_rows.values())
    day["wall_seconds"] = round(day["load_wall_seconds"] + day["transform"]["total_seconds"], 2)
    return day


def _load_stages(warehouse_dsn: str, run_id: str) -> dict:
    with warehouse.connect(warehouse_dsn) as wh:
        rows, extract_s, validate_s, publish_s = wh.execute(
            "select coalesce(sum(rows_extracted), 0), coalesce(sum(extract_seconds), 0), "
            "coalesce(sum(validate_seconds), 0), coalesce(sum(publish_seconds), 0) "
            "from ops.load_batches where run_id = %s", (run_id,)).fetchone()
    return {"rows_extracted": int(rows), "extract_seconds": float(extract_s), "gate_seconds": float(validate_s),
            "publish_seconds": float(publish_s)}


def bench_transform(run_id: str) -> dict:
    dbt: dict = {}
    steps = end_to_end.timed_transform(run_id, dbt)
    return {"seconds": steps, "total_seconds": round(sum(steps.values()), 2), "dbt": dbt}


def validation_share(gate: dict, transform: dict) -> dict:
    """Load gate + marts audit, as a share of the pipeline's wall time (load + transform)."""
    validate = gate["validate_seconds"] + transform["seconds"]["marts_audit"]
    wall = gate["wall_seconds"] + transform["total_seconds"]
    return {"validate_seconds": round(validate, 2), "pipeline_wall_seconds": round(wall, 2),
            "share_of_pipeline_wall_time": round(validate / wall, 3), "target_share": 0.15}


def bench_queries(warehouse_dsn: str) -> dict:
    """Each query once to warm the cache, then QUERY_REPEATS timed runs; latencies in milliseconds."""
    import statistics

    figures = {}
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        for name, query in DASHBOARD_QUERIES.items():
            conn.execute(query).fetchall()
            timings = []
            for _ in range(QUERY_REPEATS):
                started = time.perf_counter()
                conn.execute(query).fetchall()
                timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            figures[name] = {"p50_ms": round(statistics.median(timings), 2),
                             "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 2)}
    worst = max(f["p95_ms"] for f in figures.values())
    return {"queries": figures, "worst_p95_ms": worst, "target_p95_ms": 50, "repeats": QUERY_REPEATS}


def _server_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return conn.execute("show server_version").fetchone()[0]


def _machine() -> dict:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def _write(results: dict) -> None:
    # a quick run only proves the harness works: keep its figures out of the recorded results
    folder = settings.data_dir() / "bench" if results["quick"] else ROOT / "bench" / "results"
    out = folder / f"{date.today().isoformat()}-{results['scale']:g}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    table = _markdown(results)
    print(table)
    print(f"\nResults: {out}")
    if not results["quick"]:
        (ROOT / "docs" / "benchmarks.md").write_text(_page(results, table, out))


def _markdown(r: dict) -> str:
    raw, sim, gate = r["raw_load"], r["simulator"], r["gate"]
    rows = [
        ("simulator", f"{sim['rows']:,}", f"{sim['rows_per_second']:,} rows/s", "≥ 100,000 rows/s"),
        ("plain COPY pipe (baseline)", f"{raw['copy_baseline']['rows']:,}",
         f"{raw['copy_baseline']['rows_per_second']:,} rows/s, {raw['copy_baseline']['mb_per_second']} MB/s", ""),
        ("project extract + land + publish", f"{raw['project']['rows']:,}",
         f"{raw['project']['rows_per_second']:,} rows/s, {raw['project']['mb_per_second']} MB/s",
         f"ratio to COPY {raw['ratio_to_copy']} (target ≥ 0.7)"),
        *_other_tools_rows(raw["other_tools"]),
        ("load gate (row screen + GX)", "", f"{gate['validate_seconds']} s of {gate['wall_seconds']} s load wall time",
         f"share {gate['share_of_load_wall_time']}"),
        ("all validation (load gate + marts audit)", "",
         f"{r['validation']['validate_seconds']} s of {r['validation']['pipeline_wall_seconds']} s pipeline wall time",
         f"share {r['validation']['share_of_pipeline_wall_time']} (target ≤ 0.15)"),
        ("transform (dbt core, predictive, marts write-audit-publish)", "",
         ", ".join(f"{k} {v} s" for k, v in r["transform"]["seconds"].items()), ""),
        ("dashboard queries (10, p95 of each)", "", f"worst p95 {r['queries']['worst_p95_ms']} ms",
         "target ≤ 50 ms"),
    ]
    if "incremental" in r:
        day, nothing = r["incremental"]["one_day"], r["incremental"]["nothing_new"]
        rows += [
            ("after advance --days 1 (load + transform)", f"{day['rows_extracted']:,}",
             f"{day['wall_seconds']} s: load {day['load_wall_seconds']} s (extract {day['extract_seconds']:.1f}, "
             f"gate {day['gate_seconds']:.1f}, publish {day['publish_seconds']:.1f}); "
             + ", ".join(f"{k} {v} s" for k, v in day["transform"]["seconds"].items()),
             f"{day['share_of_full_run']} of the full run (target ≤ 0.10)"),
            ("nothing new (load; transform not triggered)", f"{nothing['rows_extracted']:,}",
             f"{nothing['wall_seconds']} s", f"{nothing['share_of_full_run']} of the full run (target ≤ 0.05)"),
        ]
        if "second_day" in r["incremental"]:
            second = r["incremental"]["second_day"]
            rows.append(("a second day (load + transform)", f"{second['rows_extracted']:,}",
                         f"{second['wall_seconds']} s: load {second['load_wall_seconds']} s; "
                         + ", ".join(f"{k} {v} s" for k, v in second["transform"]["seconds"].items()),
                         f"{second['share_of_full_run']} of the full run"))
    rows += _end_to_end_rows(r)
    lines = ["| scenario | rows | measured | vs target |", "| --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += ["", "| dashboard query | p50 ms | p95 ms |", "| --- | --- | --- |"]
    lines += [f"| {name} | {q['p50_ms']} | {q['p95_ms']} |" for name, q in r["queries"]["queries"].items()]
    return "\n".join(lines)


def _end_to_end_rows(r: dict) -> list[tuple[str, str, str, str]]:
    memory, orchestration = r["memory"], r["orchestration"]
    rows = [("peak memory of the full run's process tree (bench, dbt)", "",
             f"{memory['process_tree_peak_mb']:,} MB (postgres server ≤ "
             f"{memory['postgres_server_peak_mb_upper_bound']:,} MB, shared memory counted per process)",
             "target ≤ 2,048 MB")]
    rows += [(f"full run at scale {run['scale']:g}", f"{run['rows']:,}",
              f"{run['wall_seconds']} s: " + ", ".join(f"{k} {v:.1f}" for k, v in run["seconds"].items()),
              f"time × {run['time_ratio']} for rows × {run['row_ratio']}") for run in r["scaling"]["runs"]]
    rows.append((f"orchestration: airflow dags test at scale {orchestration['scale']:g}", "",
                 f"DAG runs {orchestration['dag_run_seconds']} s, {orchestration['task_seconds']} s in tasks ("
                 + ", ".join(f"{d}: {v['task_instances']} task instances" for d, v in orchestration["dags"].items())
                 + f"); with the `dags test` processes' start {orchestration['process_wall_seconds']} s "
                 f"(share {orchestration['process_overhead_share']})",
                 f"overhead share {orchestration['overhead_share']} (target ≤ 0.10)"))
    dbt_tasks = r["dbt_tasks"]
    rows.append((f"crm_transform's dbt task groups (Cosmos) at scale {dbt_tasks['scale']:g}, initial builds", "",
                 f"{dbt_tasks['task_groups_seconds']} s ("
                 + ", ".join(f"{g}: {v['seconds']} s, its dbt build {v['producer_seconds']} s, tasks "
                             + " ".join(f"{n} {k}" for k, n in sorted(v["task_instances"].items()))
                             for g, v in dbt_tasks["task_groups"].items())
                 + ") against the same builds run bare on the same warehouse: "
                 + ", ".join(f"{g} {v} s" for g, v in dbt_tasks["bare_dbt_seconds"].items()),
                 f"overhead {dbt_tasks['overhead_share']}, of the dbt builds alone "
                 f"{dbt_tasks['producers_overhead_share']} (target ≤ 0.25)"))
    return rows


def _other_tools_rows(o: dict) -> list[tuple[str, str, str, str]]:
    def rate(f: dict) -> str:
        return f"{f['rows_per_second']:,} rows/s, {f['mb_per_second']} MB/s"

    scope = f"{len(o['tables'])} tables ≤ {BASELINE_MAX_ROWS:,} rows"
    return [
        (f"same {scope}: project", f"{o['project']['rows']:,}", rate(o["project"]),
         f"ratio to COPY {o['project']['rows_per_second'] / o['copy_baseline']['rows_per_second']:.3f}"),
        (f"same {scope}: pandas read_sql + to_sql", f"{o['pandas']['rows']:,}", rate(o["pandas"]),
         f"project {o['project_vs_pandas']}× faster (target ≥ 10×)"),
        (f"same {scope}: dlt sql_database (ConnectorX, CSV)", f"{o['dlt']['rows']:,}", rate(o["dlt"]),
         f"project {o['project_vs_dlt']}× faster (target ≥ 4×)"),
    ]


def _page(r: dict, table: str, out: Path) -> str:
    """The generated page; a hand-written `## Notes` section at its end survives regeneration."""
    page = ROOT / "docs" / "benchmarks.md"
    existing = page.read_text() if page.exists() else ""
    notes = existing[existing.index("\n## Notes"):] if "\n## Notes" in existing else ""
    return _generated(r, table, out) + notes


def _generated(r: dict, table: str, out: Path) -> str:
    return f"""# Benchmarks

Latest figures, scale {r['scale']:g}, measured {r['measured_at'][:10]} on {r['machine']['cpus']} CPUs,
PostgreSQL {r['server_version']}. Every ratio is against a baseline run in the same process on the same
server, because these machines are noisy. Raw results: `{out.relative_to(ROOT)}`.

{table}

Reproduce: `make bench` (scale 10) or `make bench BENCH_ARGS="--scale 1"`; `--quick` is the smoke test CI runs.
"""


if __name__ == "__main__":
    main()
