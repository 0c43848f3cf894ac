"""What the warehouse holds, printed for people: batch status per object and the demo's summary."""

from __future__ import annotations

from urllib.parse import urlsplit

from psycopg import sql
from rich.console import Console
from rich.table import Table

from crm_warehouse import access, settings, warehouse

LATEST_BATCHES = """
select distinct on (object_name)
       object_name, batch_id, status, rows_extracted, rows_published, rows_quarantined,
       watermark_to, coalesce(published_at, validated_at, landed_at, started_at) as at
from ops.load_batches {where}
order by object_name, batch_id desc
"""
HELD = "select object_name, batch_id, rows_extracted, message from ops.load_batches where status = 'held' order by 2"
QUARANTINE = """
select object_name, sum(rows_quarantined)::bigint, count(*) filter (where rows_quarantined > 0),
       max(batch_id) filter (where rows_quarantined > 0)
from ops.load_batches where rows_quarantined > 0 group by 1 order by 1
"""
RECONCILIATIONS = """
select distinct on (object_name)
       object_name, reconciled_at, source_keys, raw_live_keys, deleted_keys,
       sum(deleted_keys) over (partition by object_name) as tombstones
from ops.key_reconciliations
order by object_name, reconciled_at desc
"""
MARTS_VERSION = """
select version_id, action, as_of_date, coalesce(published_at, recorded_at) from ops.marts_versions
where status = 'published' order by version_id desc limit 1
"""
MARTS = """
select table_name from information_schema.tables
where table_schema = 'marts' and table_type = 'BASE TABLE' order by 1
"""


def _console() -> Console:
    """Rich wraps to 80 columns when piped; status tables are read in logs and CI too."""
    import sys

    return Console() if sys.stdout.isatty() else Console(width=160)


def print_status(dsn: str, console: Console | None = None) -> None:
    console = console or _console()
    with warehouse.connect(dsn) as conn:
        if not conn.execute("select to_regclass('ops.load_batches')").fetchone()[0]:
            console.print("Nothing loaded yet: run `crmwh run` (or `make demo`).")
            return
        # a ledger made before hard-delete detection has no batch_kind until the next load (or `crmwh init`)
        reconciles = conn.execute("select to_regclass('ops.key_reconciliations')").fetchone()[0] is not None
        table = Table(title="Latest batch per CRM object")
        for column in ("object", "batch", "status", "extracted", "published", "quarantined", "watermark", "at"):
            table.add_column(column, justify="right" if column in ("batch", "extracted", "published",
                                                                  "quarantined") else "left")
        where = "where batch_kind = 'extract'" if reconciles else ""
        for row in conn.execute(LATEST_BATCHES.format(where=where)):
            table.add_row(*[_fmt(value) for value in row])
        console.print(table)
        held = conn.execute(HELD).fetchall()
        if held:
            console.print(f"[bold red]{len(held)} held batch(es):[/]")
            for name, batch_id, rows, message in held:
                console.print(f"  {name} batch {batch_id} ({rows} rows): {message}")
        else:
            console.print("No held batches.")
        _print_quarantine(conn, console)
        if reconciles:
            _print_reconciliations(conn, console)
        version = conn.execute(MARTS_VERSION).fetchone()
        if version:
            console.print(f"Marts: version {version[0]} ({version[1]}, as of {version[2]}) live since "
                          f"{_fmt(version[3])}; `crmwh rollback` swaps the previous one back.")


def _print_quarantine(conn, console: Console) -> None:
    rows = conn.execute(QUARANTINE).fetchall()
    if not rows:
        console.print("Nothing quarantined.")
        return
    table = Table(title="Quarantined rows (quarantine.<object>, with the rules each row broke)")
    for column in ("object", "rows", "batches", "latest batch"):
        table.add_column(column, justify="left" if column == "object" else "right")
    for row in rows:
        table.add_row(*[_fmt(value) for value in row])
    console.print(table)


def print_quarantine(dsn: str, object_name: str | None = None, batches: int = 5,
                     console: Console | None = None) -> None:
    """Quarantined rows per object, batch and rule with sample keys (latest `batches` batches per object),
    then the held batches and what to do with them."""
    console = console or _console()
    with warehouse.connect(dsn) as conn:
        if not conn.execute("select to_regclass('ops.load_batches')").fetchone()[0]:
            console.print("Nothing loaded yet: run `crmwh run` (or `make demo`).")
            return
        rows = [row for name in _quarantined_objects(conn, object_name)
                for row in _quarantine_rows(conn, name, batches)]
        if rows:
            table = Table(title="Quarantined rows (quarantine.<object>): the rules each row broke")
            for column in ("object", "batch", "rule", "rows", "sample keys"):
                table.add_column(column, justify="right" if column in ("batch", "rows") else "left")
            for row in rows:
                table.add_row(*[_fmt(value) for value in row])
            console.print(table)
        else:
            console.print("Nothing quarantined" + (f" for {object_name}." if object_name else "."))
        held = [h for h in conn.execute(HELD).fetchall() if object_name in (None, h[0])]
        for name, batch_id, count, message in held:
            console.print(f"[bold red]Held:[/] {name} batch {batch_id} ({count} rows): {message}")
        if held:
            console.print("Publish one after a fix with `crmwh quarantine release <batch> --reason ...`, "
                          "or drop it and extract again with `crmwh replay <batch> --reason ...`.")


def _quarantined_objects(conn, object_name: str | None) -> list[str]:
    names = [r[0] for r in conn.execute(
        "select object_name from ops.load_batches where rows_quarantined > 0 group by 1 order by 1")]
    return [n for n in names if object_name in (None, n)]


def _quarantine_rows(conn, name: str, batches: int) -> list[tuple]:
    from crm_warehouse import objects

    key = sql.Identifier(objects.get(name).key)
    return conn.execute(sql.SQL("""
        with latest as (
            select distinct _batch_id from {table} order by _batch_id desc limit %s
        )
        select {name}, q._batch_id, rule, count(*),
               array_to_string((array_agg(q.{key}::text order by q.{key}::text))[1:5], ', ')
        from {table} q join latest using (_batch_id), unnest(q._failed_rules) as rule
        group by q._batch_id, rule
        order by q._batch_id desc, count(*) desc, rule
    """).format(table=sql.Identifier("quarantine", name), name=sql.Literal(name), key=key), (batches,)).fetchall()


def _print_reconciliations(conn, console: Console) -> None:
    rows = conn.execute(RECONCILIATIONS).fetchall()
    if not rows:
        console.print("No key reconciliation yet (hard-delete detection, CRMWH_DELETE_RECONCILE_HOURS).")
        return
    table = Table(title="Hard-delete detection: latest key reconciliation per object (tombstones in raw_crm)")
    for column in ("object", "reconciled at", "source keys", "live in raw", "deleted", "tombstones"):
        table.add_column(column, justify="left" if column in ("object", "reconciled at") else "right")
    for row in rows:
        table.add_row(*[_fmt(value) for value in row])
    console.print(table)


def mart_counts(dsn: str) -> dict[str, int]:
    with warehouse.connect(dsn) as conn:
        names = [row[0] for row in conn.execute(MARTS)]
        return {
            name: conn.execute(
                sql.SQL("select count(*) from marts.{}").format(sql.Identifier(name))
            ).fetchone()[0]
            for name in names
        }


def print_demo_summary(conns: settings.Connections, seconds: float, console: Console | None = None) -> None:
    console = console or _console()
    counts = mart_counts(conns.warehouse)
    table = Table(title="Marts built (schema marts)")
    table.add_column("mart")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    parts = urlsplit(conns.warehouse)
    user, password_hint = parts.username, ""
    if settings.uses_embedded_server():  # the analysts' login: marts only, personal data masked
        user, password_hint = access.ANALYST, f"PGPASSWORD=$(cat {access.password_file(access.ANALYST)}) "
    # plain print: these are commands to copy, so rich must not wrap them
    print(f"Demo finished in {seconds:.0f}s.\n")
    print("Query the marts with any SQL client:")
    print(f"  {password_hint}psql -h {parts.hostname} -p {parts.port} -U {user} "
          f"-d {parts.path.lstrip('/')} -c 'select * from marts.mart_customer_ltv limit 10'")
    print("Watch runs in the Airflow UI:   make airflow   (http://127.0.0.1:8080)")
    print("Browse lineage in the dbt docs: make docs      (http://127.0.0.1:8081)")
    print("Batch status per object:        .venv/bin/crmwh status")
    print("Stop the embedded PostgreSQL:   make stop")


def _fmt(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
