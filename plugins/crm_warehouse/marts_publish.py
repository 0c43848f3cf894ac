"""Write-audit-publish for the marts: build into a shadow schema, audit it, swap it in atomically.

dbt builds the marts into `marts_shadow` (dbt var marts_schema) and runs their dbt tests there; the GX
suites in expectations/marts/ audit the shadow tables; only then one transaction renames `marts` to
`marts_previous` and `marts_shadow` to `marts`, after copying every grant of the live schema and its
tables onto the shadow; then the analysts' grants are applied again (access.apply_marts). Analysts
never see a half-built or failing mart, and `rollback` swaps the previous version back in the same
way. Every publish, failure and rollback is a row in ops.marts_versions.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from crm_warehouse import access, settings, warehouse
from crm_warehouse import audit as audit_log
from crm_warehouse.errors import WarehouseError

log = logging.getLogger(__name__)
LIVE = "marts"
SHADOW = "marts_shadow"
PREVIOUS = "marts_previous"


class MartsNotPublished(WarehouseError):
    """The shadow build or its audit failed; the live marts are unchanged."""


def prepare_shadow(as_of_date: str | None = None) -> None:
    """A fresh shadow schema, so nothing from an earlier failed build can be published by mistake.

    Incremental marts (those with _batch_cutoff_xid) start from a copy of their live table, so the build
    only adds what changed; not for a rebuild as of a past date, which rebuilds them in full.
    """
    with warehouse.connect(settings.warehouse_dsn()) as wh, wh.transaction():
        wh.execute(sql.SQL("set local role {}").format(sql.Identifier(access.TRANSFORMER)))  # dbt's schema
        wh.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(SHADOW)))
        carried = [] if as_of_date else _incremental_marts(wh)
        if carried:
            wh.execute(sql.SQL("create schema {}").format(sql.Identifier(SHADOW)))
        for table in carried:
            names = {"shadow": sql.Identifier(SHADOW), "live": sql.Identifier(LIVE), "table": sql.Identifier(table)}
            wh.execute(sql.SQL("create table {shadow}.{table} (like {live}.{table} including all)").format(**names))
            wh.execute(sql.SQL("insert into {shadow}.{table} select * from {live}.{table}").format(**names))
    if carried:
        log.info("Incremental marts carried into %s from %s: %s", SHADOW, LIVE, ", ".join(carried))


def _incremental_marts(wh: psycopg.Connection) -> list[str]:
    return [r[0] for r in wh.execute(
        "select table_name from information_schema.columns where table_schema = %s "
        "and column_name = '_batch_cutoff_xid' order by 1", (LIVE,)).fetchall()]


def record_failure(stage: str, message: str, as_of_date: str | None, run_id: str | None = None) -> None:
    with warehouse.connect(settings.warehouse_dsn()) as wh:
        warehouse.init_warehouse(wh)
        wh.execute(
            "insert into ops.marts_versions (action, status, run_id, as_of_date, message) "
            "values ('publish', %s, %s, %s, %s)",
            (f"failed_{stage}", run_id, as_of_date, message),
        )


def publish(run_id: str | None = None, audit: dict | None = None) -> int:
    """Swap the audited shadow in as `marts`; the live version becomes `marts_previous`."""
    with warehouse.connect(settings.warehouse_dsn()) as wh:
        warehouse.init_warehouse(wh)
        with wh.transaction():
            _lock(wh)
            if not _schema_exists(wh, SHADOW):
                raise MartsNotPublished(f"There is no {SHADOW} schema to publish; build the marts first.")
            as_of_date = _as_of_date(wh, SHADOW)
            rows = _rows(wh, SHADOW)
            if _schema_exists(wh, LIVE):
                _copy_grants(wh, LIVE, SHADOW)
                wh.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(PREVIOUS)))
                _rename(wh, LIVE, PREVIOUS)
            _rename(wh, SHADOW, LIVE)
            version_id = wh.execute(
                "insert into ops.marts_versions (action, status, run_id, as_of_date, audit, published_at) "
                "values ('publish', 'published', %s, %s, %s, clock_timestamp()) returning version_id",
                (run_id, as_of_date, Jsonb(audit or {})),
            ).fetchone()[0]
            audit_log.record(wh, "publish", object_name=LIVE, run_id=run_id, rows=rows,
                             detail={"version_id": version_id, "as_of_date": str(as_of_date)})
            access.record_changes(wh, access.apply_marts(wh))
    log.info("Marts version %s (as of %s) published: %s is live, the previous version is in %s",
             version_id, as_of_date, LIVE, PREVIOUS)
    return version_id


def rollback(actor: str, reason: str = "") -> int:
    """Swap `marts_previous` back in; the version it replaces becomes `marts_previous` (roll forward again)."""
    with warehouse.connect(settings.warehouse_dsn()) as wh:
        warehouse.init_warehouse(wh)
        with wh.transaction():
            _lock(wh)
            if not _schema_exists(wh, PREVIOUS):
                raise WarehouseError(f"There is no previous marts version ({PREVIOUS}) to roll back to.")
            _copy_grants(wh, LIVE, PREVIOUS)
            _rename(wh, LIVE, "marts_rollback_swap")
            _rename(wh, PREVIOUS, LIVE)
            _rename(wh, "marts_rollback_swap", PREVIOUS)
            as_of_date = _as_of_date(wh, LIVE)
            rows = _rows(wh, LIVE)
            version_id = wh.execute(
                "insert into ops.marts_versions (action, status, as_of_date, actor, message, published_at) "
                "values ('rollback', 'published', %s, %s, %s, clock_timestamp()) returning version_id",
                (as_of_date, actor, reason),
            ).fetchone()[0]
            audit_log.record(wh, "rollback", object_name=LIVE, rows=rows, who=actor,
                             detail={"version_id": version_id, "as_of_date": str(as_of_date), "reason": reason})
            access.record_changes(wh, access.apply_marts(wh))
    log.info("Marts rolled back: the version as of %s is live again (version %s)", as_of_date, version_id)
    return version_id


def _rows(wh: psycopg.Connection, schema: str) -> int:
    """Rows in the schema's tables: what a publish or rollback puts before the analysts."""
    tables = [r[0] for r in wh.execute(
        "select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind = 'r'", (schema,)).fetchall()]
    return sum(wh.execute(sql.SQL("select count(*) from {}").format(sql.SQL(t))).fetchone()[0] for t in tables)


def _lock(wh: psycopg.Connection) -> None:
    wh.execute("select pg_advisory_xact_lock(hashtext('crmwh.marts_publish'))")


def _schema_exists(wh: psycopg.Connection, schema: str) -> bool:
    return wh.execute("select to_regnamespace(%s) is not null", (schema,)).fetchone()[0]


def _rename(wh: psycopg.Connection, old: str, new: str) -> None:
    wh.execute(sql.SQL("alter schema {} rename to {}").format(sql.Identifier(old), sql.Identifier(new)))


def _copy_grants(wh: psycopg.Connection, source: str, target: str) -> None:
    """Every privilege granted on the source schema and its tables, granted again on the target."""
    grants = wh.execute(
        """
        select null::text as relname, acl.grantee, acl.privilege_type
        from pg_namespace n, aclexplode(n.nspacl) acl
        where n.nspname = %(source)s and acl.grantee <> n.nspowner
        union all
        select c.relname, acl.grantee, acl.privilege_type
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace, aclexplode(c.relacl) acl
        where n.nspname = %(source)s and c.relkind in ('r', 'v', 'm', 'p') and acl.grantee <> c.relowner
          and exists (select 1 from pg_class t join pg_namespace tn on tn.oid = t.relnamespace
                      where tn.nspname = %(target)s and t.relname = c.relname)
        """,
        {"source": source, "target": target},
    ).fetchall()
    for relname, grantee, privilege in grants:
        role = sql.SQL("public") if grantee == 0 else sql.Identifier(_role_name(wh, grantee))
        if relname is None:
            statement = sql.SQL("grant {} on schema {} to {}").format(
                sql.SQL(privilege), sql.Identifier(target), role)
        else:
            statement = sql.SQL("grant {} on {}.{} to {}").format(
                sql.SQL(privilege), sql.Identifier(target), sql.Identifier(relname), role)
        wh.execute(statement)


def _role_name(wh: psycopg.Connection, oid: int) -> str:
    return wh.execute("select rolname from pg_roles where oid = %s", (oid,)).fetchone()[0]


def _as_of_date(wh: psycopg.Connection, schema: str):
    exists = wh.execute("select to_regclass(%s) is not null", (f"{schema}.mart_customer_ltv",)).fetchone()[0]
    if not exists:
        return None
    return wh.execute(
        sql.SQL("select max(as_of_date) from {}.mart_customer_ltv").format(sql.Identifier(schema))
    ).fetchone()[0]
