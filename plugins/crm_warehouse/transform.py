"""Run dbt against the warehouse: the same project, profile and env for the DAG, the CLI and tests."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from crm_warehouse import access, build_scope, gx_docs, marts_audit, marts_publish, settings, warehouse
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
        "PGOPTIONS": session_options(),
    }


def session_options() -> str:
    """PGOPTIONS of dbt's connections. JIT compiles each large statement for ~1 s and buys nothing for
    set-based builds; an incremental run is mostly such compile time with it on. dbt works as crm_transformer
    whoever logs in (access.py): set at connection start, which no rollback of dbt's can undo (the profile's
    `role` is a `set role` inside dbt's first transaction)."""
    return " ".join(filter(None, [os.environ.get("PGOPTIONS"), "-c jit=off", f"-c role={access.TRANSFORMER}"]))


def dbt_executable() -> str:
    beside_python = Path(sys.executable).parent / "dbt"
    found = str(beside_python) if beside_python.exists() else shutil.which("dbt")
    if not found:
        raise WarehouseError("dbt is not installed in this environment; run `make venv`.")
    return found


def run_dbt(*args: str, warehouse_dsn: str | None = None, manifest=None, results_path: Path | None = None,
            on_event: Callable | None = None):
    """Run one dbt command in this process (dbt's programmatic runner), its output in the log; raise with
    dbt's own summary on failure. Returns dbt's result (for a parse: the manifest).

    In-process rather than a `dbt` subprocess: a process importing dbt once (an Airflow `dags test` run, the
    CLI, the benchmark) pays its import (~2 s) once, and a build can reuse the manifest parsed for it
    (manifest=). results_path: where to write run_results.json when --no-write-json is given. dbt's env vars
    are set only for the invocation: PGOPTIONS makes every connection crm_transformer, which the loader's
    and the publisher's connections of this process must not be. on_event: also given every dbt event (the
    DAG's model tasks' statuses, dbt_tasks). Each dbt thread keeps its connection from node to node
    (dbt_connections).
    """
    from dbt.cli.main import dbtRunner

    from crm_warehouse import dbt_connections

    command = [*args, "--no-use-colors", "--log-level", "none", "--log-level-file", dbt_file_log_level(),
               "--project-dir", str(project_dir()), "--profiles-dir", str(project_dir())]
    log.info("Running: dbt %s", " ".join(args))
    failures: list[str] = []
    with settings.environment({**dbt_env(warehouse_dsn), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}):
        callbacks = [lambda event: _log_dbt_event(event, failures), *([on_event] if on_event else [])]
        with dbt_connections.kept_per_thread():
            result = dbtRunner(manifest=manifest, callbacks=callbacks).invoke(command)
    if results_path is not None and result.result is not None and hasattr(result.result, "write"):
        result.result.write(str(results_path))  # dbt's run_results.json, also after a failure
    if result.exception is not None and not isinstance(result.exception, Exception):
        raise result.exception  # Ctrl-C, SystemExit, Airflow's kill: not a failed build
    if not result.success:
        reason = failures or [str(result.exception or "see the dbt output above")]
        raise WarehouseError(f"dbt {args[0]} failed: " + " | ".join(reason[-8:]))
    return result.result


def dbt_file_log_level() -> str:
    """dbt's own log file (dbt_project/logs/dbt.log) at info: every node's start, result and error. At debug
    (DBT_LOG_LEVEL_FILE=debug, dbt's own variable) it also holds every statement dbt sent, which costs the
    builds' threads ~0.5 s of a day's core build at scale 10: they queue on the log file's lock."""
    return os.environ.get("DBT_LOG_LEVEL_FILE", "info")


def _log_dbt_event(event, failures: list[str]) -> None:
    """dbt's console lines, as `dbt: ...` log lines (what `dbt` prints at its default level)."""
    level = event.info.level
    if level in ("info", "warn", "error") and event.info.msg:
        for line in str(event.info.msg).splitlines():
            log.info("dbt: %s", line)
    if level == "error" or (level == "warn" and "FAIL" in str(event.info.msg)):
        failures.append(str(event.info.msg).strip())


# the marts and the intermediate models they share, built with the marts' as-of date (tag as_of: revenue orders
# and refunds, revenue and activity periods per customer, the deal state), so an as-of rebuild of the marts
# recomputes them too
MARTS = "path:models/marts tag:as_of"
# data tests of table and incremental models that the models enforce themselves, so the pipeline's builds
# leave them out (`dbt test` and `make test` run them): not_null tests are NOT NULL constraints, unique and
# unique_combination_of_columns tests of severity error unique indexes (macros enforce_not_null_tests,
# enforce_unique_tests), and the row-level tests of severity error are checked by a post-hook in one query
# per model (macro assert_row_tests)
ROW_TESTS = ("accepted_range", "accepted_values", "expression_is_true")
# enforced only at severity error; not_null at any severity
ERROR_SEVERITY_TESTS = ("unique", "unique_combination_of_columns", *ROW_TESTS)
CONSTRAINED_TESTS = tuple(
    f"test_name:{test},config.materialized:{materialized}" + (",config.severity:error" if test != "not_null" else "")
    for test in ("not_null", *ERROR_SEVERITY_TESTS) for materialized in ("table", "incremental")
)
# staging relationships tests that restate a reference rule of the load gate, which quarantines the rows
# that would fail them (models/staging/_crm__models.yml says why they cannot fail): 37 nodes, a fifth of a
# one-day core build's time, which the pipeline's builds leave out; `dbt test` and `make test` run them
GATE_ENFORCED_TAG = "load_gate_reference"
# the tests the pipeline's builds leave out, as dbt selectors (`dbt ls`, `dbt test`); is_left_out is the same rule
LEFT_OUT_TESTS = (*CONSTRAINED_TESTS, f"tag:{GATE_ENFORCED_TAG}")
# the builds leave them out by this tag, which _parsed_manifest gives them in the manifest it parses: dbt resolved
# LEFT_OUT_TESTS' 114 selector parts in ~0.6 s a core build (each config.materialized part selects every table model
# and, eagerly, all its tests, once per test name), the tag in a few ms
LEFT_OUT_TAG = "pipeline_left_out"


def is_left_out(test_name: str | None, parent_materialized: str | None, severity: str, tags: list[str]) -> bool:
    """LEFT_OUT_TESTS' rule for one data test: one the load gate enforces, or one its table or incremental model
    enforces itself (a not_null test, or one of ERROR_SEVERITY_TESTS at severity error)."""
    if GATE_ENFORCED_TAG in tags:
        return True
    return parent_materialized in ("table", "incremental") and (
        test_name == "not_null" or (test_name in ERROR_SEVERITY_TESTS and severity.lower() == "error"))


# dbt threads of the core build (the profile's 2, one per core, for the marts): an incremental core run
# is ~500 small nodes whose time is mostly round trips and dbt's own work, which overlap; the marts are a
# few heavy queries that only compete for the cores (measured at scale 10: core -4 s, marts +2.6 s at 4)
CORE_THREADS = 4


def build(*, select: str | None = None, exclude: str | None = None, as_of_date: str | None = None,
          threads: int | None = None, on_event: Callable | None = None) -> None:
    """`dbt build`, optionally of a part of the project (dbt selectors, space-separated), as of a date.

    Marts are always built into the shadow schema (write-audit-publish). The core build passes the
    same vars as the marts build on purpose: dbt re-parses the whole project (~5 s) whenever the vars
    differ from the previous invocation's, which alternating builds would otherwise pay every time.
    Unit tests are left out: they prove the models' logic on fixed rows, not the data, so they run in
    CI (`make test`), as dbt recommends, instead of costing every run of the pipeline; so are the tests the
    models enforce themselves (CONSTRAINED_TESTS) and those the load gate enforces (GATE_ENFORCED_TAG).
    """
    args = ["build", "--exclude-resource-type", "unit_test"]
    if select:
        args += ["--select", *select.split()]
    args += ["--exclude", *(exclude.split() if exclude else []), f"tag:{LEFT_OUT_TAG}"]
    if threads:
        args += ["--threads", str(threads)]
    dbt_vars = json.dumps(build_vars(as_of_date))
    # the manifest parsed once per process and project state; dbt writes it then (parse), not again per build
    run_dbt(*args, "--vars", dbt_vars, "--no-write-json", manifest=_parsed_manifest(dbt_vars),
            results_path=project_dir() / "target" / "run_results.json", on_event=on_event)


_PARSED: dict[str, object] = {}


def _parsed_manifest(dbt_vars: str):
    """`dbt parse` with these vars, once per process while the project's files, the vars and the warehouse
    stay the same (parsing costs ~2 s a build at this project's size)."""
    key = build_scope.project_fingerprint(project_dir(), json.loads(dbt_vars)) + json.dumps(dbt_env(), sort_keys=True)
    if key not in _PARSED:
        _PARSED.clear()
        # no manifest.json: nothing reads the builds' one (the task groups render from their own, dbt_tasks), and
        # writing it cost ~1 s a run
        manifest = run_dbt("parse", "--vars", dbt_vars, "--no-write-json")
        _tag_left_out_tests(manifest)
        # a build marks ephemeral models' CTEs as injected in the manifest it was given: no reuse then
        if any(node.config.materialized == "ephemeral" for node in manifest.nodes.values()):
            return manifest
        _PARSED[key] = manifest
    return _PARSED[key]


def _tag_left_out_tests(manifest) -> None:
    """LEFT_OUT_TAG on the data tests of LEFT_OUT_TESTS, in this in-memory manifest only (`dbt test` parses its own)."""
    for node in manifest.nodes.values():
        if node.resource_type != "test":
            continue
        parent = manifest.nodes.get(getattr(node, "attached_node", None) or "")
        metadata = getattr(node, "test_metadata", None)
        if is_left_out(metadata.name if metadata else None, parent.config.materialized if parent else None,
                       str(node.config.severity), node.tags):
            node.tags.append(LEFT_OUT_TAG)


def build_vars(as_of_date: str | None = None) -> dict:
    return {"marts_schema": marts_publish.SHADOW, **({"as_of_date": as_of_date} if as_of_date else {})}


def build_core(as_of_date: str | None = None, on_event: Callable | None = None) -> None:
    """Everything the marts read: staging, intermediate and the core star schema; only the part downstream of
    the CRM objects changed since the last core build that succeeded, when the project has not changed since
    (build_scope)."""
    with core_build(as_of_date) as selectors:
        if selectors is not None:
            build(select=" ".join(selectors) or None, exclude=MARTS, as_of_date=as_of_date, threads=CORE_THREADS,
                  on_event=on_event)


@contextmanager
def core_build(as_of_date: str | None = None) -> Iterator[list[str] | None]:
    """Around a core build (this module's or the DAG's, dbt_tasks): the dbt selectors it must build ([]: every
    model), or None when nothing changed. Holds the core build lock; the build is recorded as succeeded when
    the block completes."""
    fingerprint = build_scope.project_fingerprint(project_dir(), build_vars(as_of_date))
    with warehouse.connect(settings.warehouse_dsn()) as wh, build_scope.exclusive(wh):
        warehouse.init_warehouse(wh)
        scope = build_scope.core_scope(wh, fingerprint)
        if scope.is_empty:
            log.info("Core build: no CRM object changed since the last core build; nothing to build")
            yield None
            return
        if scope.changed_objects is not None:
            log.info("Core build: downstream of the objects changed since the last core build: %s",
                     ", ".join(scope.changed_objects))
        build_id = build_scope.record_attempt(wh, scope)
        yield scope.selectors
        build_scope.record_success(wh, build_id)


def build_marts_shadow(as_of_date: str | None = None, on_event: Callable | None = None) -> None:
    """Write: the marts and their dbt tests, in the shadow schema; `marts` is untouched."""
    marts_publish.prepare_shadow(as_of_date)
    try:
        build(select=MARTS, as_of_date=as_of_date, on_event=on_event)
    except WarehouseError as exc:
        not_published("build", f"the dbt build of {marts_publish.SHADOW} failed: {exc}", as_of_date)


def audit_marts(as_of_date: str | None = None) -> dict:
    """Audit: the GX suites of expectations/marts/ on the shadow marts."""
    result = marts_audit.audit(compare_row_counts=as_of_date is None)
    if not result.passed:
        not_published("audit", "the GX audit of the shadow marts failed: " + "; ".join(result.failures), as_of_date)
    return result.summary()


def publish_marts(run_id: str | None = None, audit: dict | None = None) -> int:
    """Publish: swap the audited shadow in as `marts` in one transaction."""
    return marts_publish.publish(run_id, audit)


def build_marts(as_of_date: str | None = None, run_id: str | None = None) -> int:
    build_marts_shadow(as_of_date)
    try:
        return publish_marts(run_id, audit_marts(as_of_date))
    finally:  # the audit's Data Docs pages, also a failed audit's: after it decided (~1 s, gating nothing)
        gx_docs.build_and_log()


def not_published(stage: str, reason: str, as_of_date: str | None) -> None:
    """Record why the marts were not published (ops.marts_versions) and stop with that message."""
    message = (f"The marts were not published: {reason}. Schema marts is unchanged; the failed build is in "
               f"{marts_publish.SHADOW} for inspection.")
    marts_publish.record_failure(stage, message, as_of_date)
    raise marts_publish.MartsNotPublished(message)


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


def docs_target() -> Path:
    """The docs site's own target directory: docs describe the live marts (default vars), and sharing the
    builds' partial-parse state would make the next build re-parse the whole project."""
    return project_dir() / "target" / "docs"


def generate_docs() -> Path:
    run_dbt("docs", "generate", "--target-path", str(docs_target()))
    return docs_target() / "index.html"


def serve_docs(port: int) -> None:
    run_dbt("docs", "serve", "--port", str(port), "--no-browser", "--target-path", str(docs_target()))
