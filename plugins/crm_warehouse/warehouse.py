"""Connections to the warehouse and the DDL it needs: schemas, ledger, per-object landing/raw tables."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from crm_warehouse import access, audit
from crm_warehouse.errors import WarehouseError

SOURCE_SCHEMA = "crm"
LANDING = "landing"
RAW = "raw_crm"
# _deleted_at: set only on a tombstone, the version key reconciliation writes for a row hard-deleted
# in the source (delete_detection.py); null on every extracted row
LOAD_COLUMNS = (("_batch_id", "bigint"), ("_extracted_at", "timestamptz"), ("_deleted_at", "timestamptz"))


def connect(dsn: str, *, autocommit: bool = True, role: str = "warehouse") -> psycopg.Connection:
    """Open a connection, turning the usual failures into one line that says what to do.

    Autocommit by default: every multi-statement change is an explicit `with conn.transaction()`.
    """
    try:
        # UTF8 even from a SQL_ASCII source, whose text psycopg would otherwise return as bytes
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10, application_name="crmwh",
                               client_encoding="UTF8")
    except psycopg.OperationalError as exc:
        reason = _first_line(exc)
        raise WarehouseError(f"Cannot connect to the {role} database ({safe_dsn(dsn)}): {reason}"
                             f"{_login_hint(reason)}") from exc


def _login_hint(reason: str) -> str:
    # postgres tells a client the same for a wrong and an expired password, on purpose
    if "password authentication failed" in reason:
        return " (check the password, and that it has not expired: the role's VALID UNTIL)"
    if "not permitted to log in" in reason:
        return " (the role's login was revoked: ask the warehouse's owner, or run `crmwh init` for the project's roles)"
    return ""


def init_warehouse(conn: psycopg.Connection, passwords: dict[str, str] | None = None) -> None:
    """Roles and grants (access.apply: what is missing), then, as the loader, the ledger and the audit log's
    partitions; the role changes go to the audit log in the same transaction."""
    ddl = resources.files("crm_warehouse").joinpath("sql/warehouse_init.sql").read_text()
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('crmwh.init'))")
        changes = access.apply(conn, passwords)
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(access.LOADER)))
        conn.execute(ddl)
        audit.maintain(conn)
        conn.execute("reset role")
        access.record_changes(conn, changes)


@dataclass(frozen=True)
class Column:
    name: str
    type: str


def source_columns(source: psycopg.Connection, table: str) -> list[Column]:
    columns = table_columns(source, SOURCE_SCHEMA, table)
    if not columns:
        raise WarehouseError(
            f"The CRM source has no table {SOURCE_SCHEMA}.{table}. Create it as described in "
            f"docs/source-contract.md, or run `crmwh simulate` to create a simulated CRM."
        )
    return columns


def table_columns(conn: psycopg.Connection, schema: str, table: str) -> list[Column]:
    rows = conn.execute(
        """
        select a.attname, format_type(a.atttypid, a.atttypmod)
        from pg_attribute a
        where a.attrelid = to_regclass(format('%%I.%%I', %s::text, %s::text))
          and a.attnum > 0 and not a.attisdropped
        order by a.attnum
        """,
        (schema, table),
    ).fetchall()
    return [Column(name, type_) for name, type_ in rows]


QUARANTINE = "quarantine"
QUARANTINE_COLUMNS = (("_failed_rules", "text[] not null"),
                      ("_quarantined_at", "timestamptz not null default clock_timestamp()"),
                      ("_released_batch_id", "bigint"))


def ensure_object_tables(conn: psycopg.Connection, table: str, key: str, columns: list[Column]) -> None:
    """Create landing.<table> (unlogged), raw_crm.<table> and quarantine.<table> for one CRM object.

    Each holds the source's columns plus the load columns; quarantine adds the rules a row broke. The
    gate identifies a landed row by its ctid (stable: landing rows are never updated), so it can route
    a row even when its key is missing or duplicated.
    """
    load_columns = [*columns, *(Column(n, t) for n, t in LOAD_COLUMNS)]
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"crmwh.ddl.{table}",))
        # _invalid_encoding: set by source_copy's checked copy
        _create_table(conn, LANDING, table, [*load_columns, Column("_invalid_encoding", "text[]")], unlogged=True)
        # no index: landing holds one batch at a time (a held one at most besides), which every reader scans
        # whole anyway, and a _batch_id index made the COPY into it ~1.9x slower (btree; BRIN 1.6x)
        conn.execute(sql.SQL("drop index if exists {}").format(sql.Identifier(LANDING, f"{table}_batch_idx")))
        _create_table(conn, RAW, table, load_columns)
        _create_raw_indexes(conn, table, key)
        _create_table(conn, QUARANTINE, table, [*load_columns, *(Column(n, t) for n, t in QUARANTINE_COLUMNS)])
        _create_index(conn, QUARANTINE, table, f"{table}_batch_idx", ["_batch_id"])


def _raw_indexes(table: str, key: str) -> list[tuple[str, list[str], str]]:
    """(name, columns, method) of raw_crm.<table>'s indexes. Incremental dbt models read the rows of new
    batches; raw is appended in batch order, so a BRIN index finds them for almost no write cost."""
    return [(f"{table}_key_idx", [key, "_batch_id"], "btree"), (f"{table}_batch_brin", ["_batch_id"], "brin")]


def _create_raw_indexes(conn: psycopg.Connection, table: str, key: str) -> None:
    for name, columns, method in _raw_indexes(table, key):
        _create_index(conn, RAW, table, name, columns, using=method)


@contextmanager
def publishing_into_raw(conn: psycopg.Connection, table: str, key: str):
    """The scope of a publish into raw_crm.<table>, inside its transaction.

    An object's first load (raw empty, usually all of its history) is written without raw's indexes,
    which are built afterwards in one sorted pass: maintaining the key index row by row made the insert
    three times slower (web_sessions at scale 10: 24 s against 5.3 + 2.6 s). The table is also truncated
    first, so on a server with wal_level = minimal (the embedded one) postgres writes the rows and the
    indexes without WAL and syncs the files at commit; elsewhere the truncate of an empty table does nothing.
    """
    raw = sql.Identifier(RAW, table)
    first_load = conn.execute(sql.SQL("select not exists (select from {})").format(raw)).fetchone()[0]
    if first_load:
        conn.execute(sql.SQL("truncate {}").format(raw))
        for name, _, _ in _raw_indexes(table, key):
            conn.execute(sql.SQL("drop index if exists {}").format(sql.Identifier(RAW, name)))
    yield
    if first_load:
        _create_raw_indexes(conn, table, key)


def refresh_raw_statistics(conn: psycopg.Connection, table: str, rows_added: int) -> None:
    """Keep raw_crm.<table>'s planner statistics and BRIN summary current after a publish.

    Incremental dbt models find a run's new rows through the BRIN index on _batch_id and then read the
    changed keys' history through the key index; without statistics (autovacuum gets to a freshly
    loaded table minutes later, or not before the transform runs) and with the new pages not yet
    summarized (BRIN returns unsummarized ranges as matches) postgres scans the whole table instead.
    ANALYZE only when the batch is a tenth of the table or the table was never analyzed, as
    autovacuum would; summarizing the new page ranges reads only those pages.
    """
    raw = sql.Identifier(RAW, table)
    reltuples = conn.execute("select reltuples from pg_class where oid = %s::regclass",
                             (raw.as_string(conn),)).fetchone()[0]
    conn.execute("select brin_summarize_new_values(%s::regclass)",
                 (sql.Identifier(RAW, f"{table}_batch_brin").as_string(conn),))
    if reltuples < 0 or rows_added > 0.1 * reltuples:
        conn.execute(sql.SQL("analyze {}").format(raw))


def _create_table(conn: psycopg.Connection, schema: str, table: str, columns: list[Column], unlogged=False) -> None:
    definition = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in columns)
    conn.execute(sql.SQL("create {}table if not exists {}.{} ({})").format(
        sql.SQL("unlogged " if unlogged else ""), sql.Identifier(schema), sql.Identifier(table), definition))
    existing = {c.name for c in table_columns(conn, schema, table)}
    # tables made by an earlier version lack newer load columns; source columns change only by add_columns
    for column in (c for c in columns if c.name.startswith("_") and c.name not in existing):
        conn.execute(sql.SQL("alter table {}.{} add column if not exists {} {}").format(
            sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column.name), sql.SQL(column.type)))


def _create_index(conn: psycopg.Connection, schema: str, table: str, name: str, columns: list[str],
                  using: str = "btree") -> None:
    conn.execute(sql.SQL("create index if not exists {} on {}.{} using {} ({})").format(
        sql.Identifier(name), sql.Identifier(schema), sql.Identifier(table), sql.SQL(using),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns)))


def add_columns(conn: psycopg.Connection, table: str, columns: list[Column]) -> None:
    """A new source column is added to landing, raw and quarantine (older rows read as null)."""
    for schema in (LANDING, RAW, QUARANTINE):
        for column in columns:
            conn.execute(
                sql.SQL("alter table {}.{} add column if not exists {} {}").format(
                    sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column.name), sql.SQL(column.type)
                )
            )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def safe_dsn(dsn: str) -> str:
    """A DSN with its password removed, fit for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

