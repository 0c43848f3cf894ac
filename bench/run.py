"""`make bench`: the pipeline measured against baselines run in the same process on the same server.

Scenarios measured so far (the rest of issue 6 builds on this harness):
  simulator   rows/s written by `simulate` at the given scale
  raw_load    the project's extract + land + publish of every CRM object (gate excluded) against a plain
              `COPY ... TO STDOUT` piped into `COPY ... FROM STDIN` of the same rows into the same DDL
  gate        GX validation time of every batch, as a share of extract + gate + publish
  transform   wall time of the three transform steps (dbt core build, predictive scores, dbt marts build)
  queries     ten typical dashboard queries on the marts: p50 / p95 over repeated runs (target p95 <= 50 ms)
  incremental the pipeline after `advance --days 1` (target <= 10% of the full run's wall time) and with
              nothing new (target <= 5%; crm_transform is not triggered then), per stage

Writes bench/results/<date>-<scale>.json and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from crm_warehouse import extract_load, objects, settings, simulator, warehouse

ROOT = Path(__file__).resolve().parents[1]
BENCH_SOURCE_DB = "bench_crm"
BENCH_WAREHOUSE_DB = "bench_warehouse"
BASELINE_SCHEMA = "bench_copy_baseline"
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
    source_dsn = settings.with_database(base, BENCH_SOURCE_DB)
    warehouse_dsn = settings.with_database(base, BENCH_WAREHOUSE_DB)
    for dsn in (source_dsn, warehouse_dsn):
        _recreate_database(dsn)

    results = {"scale": scale, "quick": args.quick, "measured_at": datetime.now(UTC).isoformat(),
               "machine": _machine(), "server_version": _server_version(base)}
    results["simulator"] = bench_simulator(source_dsn, scale)
    results["raw_load"], results["gate"] = bench_raw_load(source_dsn, warehouse_dsn)
    results["transform"] = bench_transform()
    results["validation"] = validation_share(results["gate"], results["transform"])
    results["queries"] = bench_queries(warehouse_dsn)
    full_wall = results["validation"]["pipeline_wall_seconds"]
    results["incremental"] = bench_incremental(source_dsn, warehouse_dsn, full_wall)
    _write(results)


def bench_simulator(source_dsn: str, scale: float) -> dict:
    started = time.perf_counter()
    counts = simulator.simulate(source_dsn, scale=scale, seed=42, quiet=True)
    seconds = time.perf_counter() - started
    rows = sum(counts.values())
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds),
            "target_rows_per_second": 100_000}


def bench_raw_load(source_dsn: str, warehouse_dsn: str) -> tuple[dict, dict]:
    """Baseline first, then the project's load, into the same DDL on the same server."""
    baseline = _copy_baseline(source_dsn, warehouse_dsn)
    import os

    os.environ["WAREHOUSE_DSN"], os.environ["CRM_SOURCE_DSN"] = warehouse_dsn, source_dsn
    wall = _load_all("bench")
    with warehouse.connect(warehouse_dsn) as wh:
        rows, extract_s, validate_s, publish_s, raw_bytes = wh.execute(
            "select sum(rows_published), sum(extract_seconds), sum(validate_seconds), sum(publish_seconds), "
            "(select sum(pg_total_relation_size(c.oid)) from pg_class c join pg_namespace n "
            " on n.oid = c.relnamespace where n.nspname = 'raw_crm' and c.relkind = 'r') "
            "from ops.load_batches where run_id = 'bench'"
        ).fetchone()
    load_seconds = float(extract_s + publish_s)
    # MB/s over the same bytes as the baseline (the rows' COPY text size), so the two compare
    project = {"rows": int(rows), "seconds": round(load_seconds, 2),
               "rows_per_second": round(int(rows) / load_seconds),
               "mb_per_second": round(baseline["bytes"] / 1e6 / load_seconds, 1),
               "raw_crm_bytes_on_disk": int(raw_bytes)}
    ratio = project["rows_per_second"] / baseline["rows_per_second"]
    raw_load = {"copy_baseline": baseline, "project": project, "ratio_to_copy": round(ratio, 3),
                "target_ratio_to_copy": 0.7}
    gate = {"validate_seconds": round(float(validate_s), 2), "wall_seconds": round(wall, 2),
            "share_of_load_wall_time": round(float(validate_s) / wall, 3)}
    return raw_load, gate


def _load_all(run_id: str) -> float:
    started = time.perf_counter()
    extract_load.load_all(run_id)
    return time.perf_counter() - started


def bench_incremental(source_dsn: str, warehouse_dsn: str, full_wall: float) -> dict:
    """One simulated day loaded and transformed, then a run with nothing new, against the full run."""
    source_rows = simulator.advance(source_dsn, days=1, quiet=True)
    day = {"load_wall_seconds": round(_load_all("bench-day"), 2), **_load_stages(warehouse_dsn, "bench-day")}
    day["transform"] = bench_transform()
    day["source_rows_changed"] = sum(source_rows.values())
    day["wall_seconds"] = round(day["load_wall_seconds"] + day["transform"]["total_seconds"], 2)
    nothing = {"load_wall_seconds": round(_load_all("bench-nothing"), 2),
               **_load_stages(warehouse_dsn, "bench-nothing")}
    nothing["wall_seconds"] = nothing["load_wall_seconds"]  # no raw asset event: crm_transform does not run
    return {"full_run_wall_seconds": full_wall,
            "one_day": {**day, "share_of_full_run": round(day["wall_seconds"] / full_wall, 3), "target_share": 0.10},
            "nothing_new": {**nothing, "share_of_full_run": round(nothing["wall_seconds"] / full_wall, 3),
                            "target_share": 0.05}}


def _load_stages(warehouse_dsn: str, run_id: str) -> dict:
    with warehouse.connect(warehouse_dsn) as wh:
        rows, extract_s, validate_s, publish_s = wh.execute(
            "select coalesce(sum(rows_extracted), 0), coalesce(sum(extract_seconds), 0), "
            "coalesce(sum(validate_seconds), 0), coalesce(sum(publish_seconds), 0) "
            "from ops.load_batches where run_id = %s", (run_id,)).fetchone()
    return {"rows_extracted": int(rows), "extract_seconds": float(extract_s), "gate_seconds": float(validate_s),
            "publish_seconds": float(publish_s)}


def bench_transform() -> dict:
    from crm_warehouse import transform

    steps, audit = {}, {}
    for name, step in (("dbt_core", transform.build_core), ("predictive", transform.score_customers),
                       ("dbt_marts_shadow", transform.build_marts_shadow),
                       ("marts_audit", lambda: audit.update(transform.audit_marts())),
                       ("marts_publish", lambda: transform.publish_marts("bench", audit))):
        started = time.perf_counter()
        step()
        steps[name] = round(time.perf_counter() - started, 2)
    return {"seconds": steps, "total_seconds": round(sum(steps.values()), 2)}


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


def _copy_baseline(source_dsn: str, warehouse_dsn: str) -> dict:
    """The ceiling: every source table piped with plain COPY into an identical, logged table."""
    total_rows, total_bytes, started = 0, 0, time.perf_counter()
    with psycopg.connect(source_dsn, autocommit=True) as src, psycopg.connect(warehouse_dsn, autocommit=True) as wh:
        wh.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(BASELINE_SCHEMA)))
        wh.execute(sql.SQL("create schema {}").format(sql.Identifier(BASELINE_SCHEMA)))
        for name in objects.all_objects():
            columns = warehouse.source_columns(src, name)
            ddl = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in columns)
            target = sql.SQL("{}.{}").format(sql.Identifier(BASELINE_SCHEMA), sql.Identifier(name))
            wh.execute(sql.SQL("create table {} ({})").format(target, ddl))
            with src.cursor() as out, wh.cursor() as into:
                with out.copy(sql.SQL("copy crm.{} to stdout").format(sql.Identifier(name))) as reader, \
                        into.copy(sql.SQL("copy {} from stdin").format(target)) as writer:
                    for chunk in reader:
                        total_bytes += len(chunk)
                        writer.write(chunk)
                total_rows += into.rowcount
    seconds = time.perf_counter() - started
    return {"rows": total_rows, "bytes": total_bytes, "seconds": round(seconds, 2),
            "rows_per_second": round(total_rows / seconds), "mb_per_second": round(total_bytes / 1e6 / seconds, 1)}


def _recreate_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(settings.with_database(dsn, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


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
    lines = ["| scenario | rows | measured | vs target |", "| --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += ["", "| dashboard query | p50 ms | p95 ms |", "| --- | --- | --- |"]
    lines += [f"| {name} | {q['p50_ms']} | {q['p95_ms']} |" for name, q in r["queries"]["queries"].items()]
    return "\n".join(lines)


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
