"""ops.audit_log: who did what to the warehouse, when, and to how many rows.

One row per load (a batch published or held), tombstone batch, quarantine release, replay, marts publish,
rollback and role change, written in the transaction of the change itself where there is one, so the log
and the warehouse never disagree. The table is partitioned by month (ops.audit_log_YYYYMM, plus a default
partition so a write never fails for want of one); `maintain` adds the partitions of this month and the
next and drops those wholly older than the retention (CRMWH_AUDIT_RETENTION_MONTHS, at least 13).
"""

from __future__ import annotations

import getpass
import os
from datetime import date

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from crm_warehouse import settings
from crm_warehouse.errors import WarehouseError

ACTIONS = ("load", "tombstones", "release", "replay", "publish", "rollback", "role_change")
MIN_RETENTION_MONTHS = 13

DDL = """
create table if not exists ops.audit_log (
    audit_id        bigint generated always as identity,
    occurred_at     timestamptz not null default clock_timestamp(),
    action          text not null,
    actor           text not null,            -- the person or process: OS user, or the Airflow run
    database_user   text not null default session_user,
    database_role   text not null default current_user,  -- the role it acted as (access.py)
    object_name     text,                     -- CRM object, schema or role
    run_id          text,
    batch_id        bigint,
    rows            bigint,                   -- rows the action wrote (published, released, archived, ...)
    detail          jsonb not null default '{}',
    primary key (occurred_at, audit_id)
) partition by range (occurred_at);
create table if not exists ops.audit_log_default partition of ops.audit_log default;
create index if not exists audit_log_action_idx on ops.audit_log (action, occurred_at desc);
"""


def actor() -> str:
    """Who acts: the Airflow run when inside a task, else the OS user."""
    run = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
    if run:
        return f"airflow:{os.environ.get('AIRFLOW_CTX_DAG_ID', '?')}/{run}"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record(conn: psycopg.Connection, action: str, *, object_name: str | None = None, rows: int | None = None,
           run_id: str | None = None, batch_id: int | None = None, who: str | None = None,
           detail: dict | None = None) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    conn.execute(
        "insert into ops.audit_log (action, actor, object_name, run_id, batch_id, rows, detail) "
        "values (%s, %s, %s, %s, %s, %s, %s)",
        (action, who or actor(), object_name, run_id, batch_id, rows, Jsonb(detail or {})))


def retention_months() -> int:
    raw = settings.tunable("CRMWH_AUDIT_RETENTION_MONTHS")
    try:
        months = int(raw)
    except ValueError:
        raise WarehouseError(f"CRMWH_AUDIT_RETENTION_MONTHS must be a whole number of months, not {raw!r}") from None
    if months < MIN_RETENTION_MONTHS:
        raise WarehouseError(f"CRMWH_AUDIT_RETENTION_MONTHS is {months}: the audit log is kept at least "
                             f"{MIN_RETENTION_MONTHS} months.")
    return months


def maintain(conn: psycopg.Connection, today: date | None = None) -> list[str]:
    """The table, this month's and next month's partitions, and no partition past the retention.

    Returns the partitions created or dropped. A partition created while the default partition holds rows
    of its month (written while it was missing) takes them over.
    """
    conn.execute(DDL)
    today = today or conn.execute("select current_date").fetchone()[0]
    changes = []
    this_month = today.replace(day=1)
    for start in (this_month, _add_months(this_month, 1)):
        if _create_partition(conn, start):
            changes.append(f"created {_partition_name(start)}")
    oldest_kept = _add_months(this_month, -retention_months())
    for name, upper in _partitions(conn):
        if upper <= oldest_kept:
            conn.execute(sql.SQL("drop table {}").format(sql.Identifier("ops", name)))
            changes.append(f"dropped {name} (older than {retention_months()} months)")
    return changes


def _create_partition(conn: psycopg.Connection, start: date) -> bool:
    name = _partition_name(start)
    if conn.execute("select to_regclass(%s) is not null", (f"ops.{name}",)).fetchone()[0]:
        return False
    end = _add_months(start, 1)
    bounds = {"table": sql.Identifier("ops", name), "start": sql.Literal(start.isoformat()),
              "end": sql.Literal(end.isoformat())}
    moved = sql.SQL("occurred_at >= {start} and occurred_at < {end}").format(**bounds)
    # rows of this month that went to the default partition while this one was missing move into it
    conn.execute(sql.SQL("create temp table audit_moved on commit drop as "
                         "select * from ops.audit_log_default where {}").format(moved))
    conn.execute(sql.SQL("delete from ops.audit_log_default where {}").format(moved))
    conn.execute(sql.SQL("create table {table} partition of ops.audit_log "
                         "for values from ({start}) to ({end})").format(**bounds))
    conn.execute("insert into ops.audit_log overriding system value select * from audit_moved")
    conn.execute("drop table audit_moved")
    return True


def _partitions(conn: psycopg.Connection) -> list[tuple[str, date]]:
    """(name, upper bound) of each monthly partition."""
    rows = conn.execute("""
        select c.relname, pg_get_expr(c.relpartbound, c.oid) from pg_inherits i
        join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'ops.audit_log'::regclass and c.relname <> 'audit_log_default'""").fetchall()
    return [(name, date.fromisoformat(bound.split("TO ('")[1][:10])) for name, bound in rows]


def _partition_name(start: date) -> str:
    return f"audit_log_{start:%Y%m}"


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
