"""`crmwh`: the warehouse's command line.

Exit codes: 0 success; 1 the pipeline ran and failed (held batch, failing dbt test); 2 a setup or
usage problem (no warehouse reachable, port taken, missing source table), reported in one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import contextmanager

from crm_warehouse import settings
from crm_warehouse.errors import WarehouseError

EXIT_PIPELINE_FAILED = 1
EXIT_SETUP_ERROR = 2


class PipelineFailed(WarehouseError):
    """The pipeline ran and failed; distinct from a setup problem for the exit code."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.handler(args) or 0
    except WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PIPELINE_FAILED if isinstance(exc, PipelineFailed) else EXIT_SETUP_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmwh", description="CRM analytics warehouse: load, gate, transform.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str, aliases=()) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, aliases=list(aliases))
        if handler:
            sub.set_defaults(handler=handler)
        return sub

    command("init", cmd_init, "Start the embedded PostgreSQL if needed; create schemas and Airflow's database.")
    sim = command("simulate", cmd_simulate, "Create and fill the simulated CRM source (drops it first).")
    sim.add_argument("--scale", type=float, default=1.0, help="1 = about 10k customers and 100k orders")
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--days", type=int, default=730, help="days of history")
    adv = command("advance", cmd_advance, "Move the simulated CRM forward in time.")
    adv.add_argument("--days", type=int, default=1)
    run = command("run", cmd_run, "Run crm_ingest then crm_transform as real Airflow DAG runs (airflow dags test).")
    run.add_argument("--ingest-only", action="store_true")
    rebuild = command("rebuild", cmd_rebuild, "Rebuild core, scores and marts, optionally as of a past date.")
    rebuild.add_argument("--as-of", dest="as_of", help="YYYY-MM-DD (default: the latest loaded day)")
    command("status", cmd_status, "Show the latest batch of every CRM object, held batches and quarantine totals.")
    release = command("release", cmd_release,
                      "Publish a held batch after a fix: its rows pass the row rules again (bad rows quarantined).")
    release.add_argument("batch_id", type=int)
    release.add_argument("--reason", required=True, help="why the batch may be published (recorded)")
    quarantine = command("quarantine", None, "What the load gate holds back: quarantined rows and held batches.")
    actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="Quarantined rows by object, batch and rule, with sample keys; "
                                              "held batches.", description="Quarantined rows by object, batch "
                                              "and rule, with sample keys; held batches and how to release them.")
    listing.add_argument("--object", help="one CRM object")
    listing.add_argument("--batches", type=int, default=5, help="latest batches per object (default 5)")
    listing.set_defaults(handler=cmd_quarantine_list)
    q_release = actions.add_parser("release", help="Publish a held batch (same as `crmwh release`).",
                                   description="Publish a held batch after a fix: its rows pass the row rules "
                                               "again, rows breaking them are quarantined.")
    q_release.add_argument("batch_id", type=int)
    q_release.add_argument("--reason", required=True, help="why the batch may be published (recorded)")
    q_release.set_defaults(handler=cmd_release)
    replay = command("replay", cmd_replay,
                     "Drop a held batch (its rows archived in quarantine) and extract its range again from the source.")
    replay.add_argument("batch_id", type=int)
    replay.add_argument("--reason", required=True, help="what was fixed (recorded)")
    rollback = command("rollback", cmd_rollback_marts,
                       "Swap the previous marts version back in (run it again to roll forward).",
                       aliases=["rollback-marts"])
    rollback.add_argument("--reason", default="", help="recorded in ops.marts_versions")
    command("quality-docs", cmd_quality_docs, "Build the Great Expectations Data Docs site and print its location.")
    demo = command("demo", cmd_demo, "Simulate a small CRM, run the whole pipeline, show what was built.")
    demo.add_argument("--scale", type=float, default=0.1)
    demo.add_argument("--seed", type=int, default=42)
    command("stop", cmd_stop, "Stop the embedded PostgreSQL.")
    docs = command("docs", cmd_docs, "Generate the dbt docs site and serve it.")
    docs.add_argument("--port", type=int, default=settings.DEFAULT_DBT_DOCS_PORT)
    docs.add_argument("--no-serve", action="store_true")
    airflow = command("airflow", cmd_airflow, "Start the Airflow UI (airflow standalone) with the project's DAGs.")
    airflow.add_argument("--port", type=int, default=8080)
    command("env", cmd_env, "Print shell exports for using airflow, dbt and psql by hand.")
    return parser


def cmd_init(args, quiet: bool = False) -> None:
    from crm_warehouse import access, airflow_runner, warehouse

    conns = settings.connections()
    with warehouse.connect(conns.warehouse) as wh:
        warehouse.init_warehouse(wh, passwords=access.login_passwords())
    _ensure_database(conns.source, "CRM source")
    airflow_runner.migrate_metadata(airflow_runner.airflow_env(conns))
    where = "embedded PostgreSQL" if settings.uses_embedded_server() else "configured warehouse"
    if not quiet:
        print(f"Warehouse ready on the {where}: {warehouse.safe_dsn(conns.warehouse)}")
        _print_logins()
    if warning := shared_airflow_login(conns):
        print(f"warning: {warning}", file=sys.stderr)


def shared_airflow_login(conns: settings.Connections) -> str | None:
    """Airflow's metadata database should have its own owner, with no access to the warehouse."""
    from urllib.parse import urlsplit

    user = urlsplit(conns.warehouse).username
    if urlsplit(conns.airflow_metadata).username != user:
        return None
    return (f"Airflow's metadata database is reached with the warehouse's login ({user}); give it a login of "
            f"its own that owns only that database (AIRFLOW_METADATA_DSN), as the embedded server and "
            f"docker-compose do.")


def _print_logins() -> None:
    from crm_warehouse import access

    for role in access.ROLES:
        if access.password_file(role).exists():
            print(f"  role {role}: password in {access.password_file(role)}")


def cmd_simulate(args) -> None:
    from crm_warehouse import simulator

    conns = settings.connections()
    _ensure_database(conns.source, "CRM source")
    started = time.perf_counter()
    counts = simulator.simulate(conns.source, scale=args.scale, seed=args.seed, days=args.days)
    seconds = time.perf_counter() - started
    total = sum(counts.values())
    print(f"Simulated CRM: {total:,} rows in {len(counts)} tables in {seconds:.1f}s ({total / seconds:,.0f} rows/s)")


def cmd_advance(args) -> None:
    from crm_warehouse import simulator

    counts = simulator.advance(settings.source_dsn(), days=args.days)
    print(f"Advanced the CRM {args.days} day(s): {sum(counts.values()):,} rows inserted or updated")


def cmd_run(args) -> None:
    from crm_warehouse import airflow_runner

    cmd_init(args, quiet=getattr(args, "quiet_init", False))
    env = airflow_runner.airflow_env()
    dags = ["crm_ingest"] if args.ingest_only else ["crm_ingest", "crm_transform"]
    for dag_id in dags:
        print(f"Running {dag_id} ...")
        try:
            with _task_progress(env, dag_id) as on_task:
                airflow_runner.dags_test(dag_id, env=env, on_task=on_task)
        except WarehouseError as exc:
            raise PipelineFailed(str(exc)) from None


@contextmanager
def _task_progress(env: dict[str, str], dag_id: str):
    """A progress bar of the DAG run's tasks on a terminal (its size read from Airflow's metadata once the
    run exists); nothing when output goes to a file or a pipe, where the echoed log lines say the same."""
    if not sys.stdout.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from crm_warehouse import airflow_runner

    with Progress(TextColumn(f"{dag_id}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), transient=True) as progress:
        bar = progress.add_task("starting", total=None)

        def on_task(task_id: str, finished: int) -> None:
            if progress.tasks[0].total is None:
                progress.update(bar, total=airflow_runner.dag_task_count(env, dag_id))
            progress.update(bar, completed=finished, description=task_id)

        yield on_task


def cmd_rebuild(args) -> None:
    from datetime import date

    from crm_warehouse import transform

    if args.as_of:
        try:
            date.fromisoformat(args.as_of)
        except ValueError:
            raise WarehouseError(f"--as-of must be a date like 2026-03-31, not {args.as_of!r}") from None
    try:
        transform.build_all(args.as_of)
    except WarehouseError as exc:
        raise PipelineFailed(str(exc)) from None
    print(f"Marts rebuilt as of {args.as_of or 'the latest loaded day'}.")


def cmd_status(args) -> None:
    from crm_warehouse import status

    status.print_status(settings.warehouse_dsn())


def cmd_release(args) -> None:
    from crm_warehouse import batch_actions

    result = batch_actions.release(args.batch_id, batch_actions.default_actor(), args.reason)
    print(f"Batch {args.batch_id} of {result.object_name} released: {result.rows_published} row(s) published, "
          f"{result.rows_quarantined} quarantined.")


def cmd_quarantine_list(args) -> None:
    from crm_warehouse import objects, status

    if args.object:
        try:
            objects.get(args.object)
        except KeyError as exc:
            raise WarehouseError(exc.args[0]) from None
    status.print_quarantine(settings.warehouse_dsn(), args.object, args.batches)


def cmd_replay(args) -> None:
    from crm_warehouse import batch_actions
    from crm_warehouse.errors import BatchHeld

    try:
        result = batch_actions.replay(args.batch_id, batch_actions.default_actor(), args.reason)
    except BatchHeld as exc:
        raise PipelineFailed(str(exc)) from None
    print(f"Batch {args.batch_id} replayed: new batch {result.batch_id} of {result.object_name} is {result.status} "
          f"({result.rows_published} published, {result.rows_quarantined} quarantined).")


def cmd_rollback_marts(args) -> None:
    from crm_warehouse import batch_actions, marts_publish

    version = marts_publish.rollback(batch_actions.default_actor(), args.reason)
    print(f"Marts rolled back (ops.marts_versions {version}); the replaced version is now marts_previous.")


def cmd_quality_docs(args) -> None:
    from crm_warehouse import gx_docs

    print(f"Great Expectations Data Docs: file://{gx_docs.build()}")


def cmd_demo(args) -> None:
    from crm_warehouse import status

    started = time.perf_counter()
    cmd_init(args)
    args.days = 730
    cmd_simulate(args)
    cmd_run(argparse.Namespace(ingest_only=False, quiet_init=True))
    status.print_demo_summary(settings.connections(), time.perf_counter() - started)


def cmd_stop(args) -> None:
    from crm_warehouse import embedded_postgres

    print("Embedded PostgreSQL stopped." if embedded_postgres.stop() else "Embedded PostgreSQL was not running.")


def cmd_docs(args) -> None:
    from crm_warehouse import transform

    index = transform.generate_docs()
    print(f"dbt docs generated: {index}")
    if not args.no_serve:
        print(f"Serving on http://127.0.0.1:{args.port} (Ctrl-C to stop)")
        transform.serve_docs(args.port)


def cmd_airflow(args) -> None:
    import os

    from crm_warehouse import airflow_runner

    cmd_init(args)
    conns = settings.connections()
    env = airflow_runner.airflow_env(conns)
    env["AIRFLOW__API__PORT"] = str(args.port)
    airflow_runner.migrate_metadata(env)
    airflow_runner.seed_connections_and_variables(env, conns)
    print(f"Airflow connections {settings.WAREHOUSE_CONNECTION} and {settings.SOURCE_CONNECTION} (Admin > Connections) "
          f"point at the warehouse and the source; variables {', '.join(settings.TUNABLES)} (Admin > Variables) "
          "keep any value set there before.")
    # tasks take the warehouse and the source from those connections (Admin > Connections), unless this
    # shell names them itself
    for name in ("WAREHOUSE_DSN", "CRM_SOURCE_DSN"):
        if name not in os.environ:
            env.pop(name, None)
    airflow_runner.ensure_admin_login()
    print(f"Starting Airflow on http://127.0.0.1:{args.port}. Ctrl-C stops it.")
    sys.stdout.flush()  # execve replaces this process: unflushed output (the password) would be lost
    os.execve(airflow_runner.airflow_executable(), ["airflow", "standalone"], env)


def cmd_env(args) -> None:
    import shlex

    from crm_warehouse import airflow_runner, transform

    env = {**airflow_runner.airflow_env(), **transform.dbt_env()}
    keys = [k for k in env if k.startswith(("AIRFLOW", "DBT_PG", "WAREHOUSE", "CRM_", "CRMWH"))]
    for key in sorted(keys):
        print(f"export {key}={shlex.quote(env[key])}")


def _ensure_database(dsn: str, role: str) -> None:
    """Create the database named in dsn if it does not exist (needs rights on the server)."""
    from urllib.parse import urlsplit

    import psycopg
    from psycopg import sql

    from crm_warehouse import warehouse

    name = urlsplit(dsn).path.lstrip("/")
    with warehouse.connect(settings.with_database(dsn, "postgres"), role=role) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            try:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            except psycopg.Error as exc:
                raise WarehouseError(f"Cannot create the {role} database {name!r}: {exc}".strip()) from exc


if __name__ == "__main__":
    sys.exit(main())
