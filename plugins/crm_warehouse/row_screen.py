"""The row screen: every row rule of a suite over one landed batch, in one SQL statement.

Each row of the batch is scanned once; only unexpected_rows rules that cannot be inlined add a join of
their own. A reference is resolved by the parent's key index, row by row, when the batch is small next to
the parent (an incremental batch: reading the whole parent cost 50-500 ms a batch at scale 10, the load
gate's largest cost in a one-day run); a large batch (an initial load) hashes the parent's keys once.
Rows that break a rule are written to ops.row_findings (the names of the error and warn rules they
broke); the gate's GX suite then validates those findings, and the routing below moves error rows to
quarantine.<object> and publishes the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from crm_warehouse.gate_rules import GateSuite, RowRule
from crm_warehouse.warehouse import LANDING, QUARANTINE, RAW, Column

log = logging.getLogger(__name__)
SAMPLE_SIZE = 5
PROBE_SHARE = 0.1  # a batch with fewer rows than this share of the parent's probes its key index per row


@dataclass
class RuleCount:
    rule: str
    severity: str
    rows: int
    sample_keys: list


def screen(wh: psycopg.Connection, suite: GateSuite, batch_id: int, batch_rows: int) -> list[RuleCount]:
    """Record the batch's rule breaks in ops.row_findings; returns the count and sample keys per rule."""
    joins, error_checks, warn_checks = [], [], []
    for index, rule in enumerate(suite.row_rules):
        predicate = _predicate(wh, suite, rule, index, (batch_id, batch_rows), joins)
        check = sql.SQL("case when {} then {} end").format(predicate, sql.Literal(rule.name))
        (error_checks if rule.severity == "error" else warn_checks).append(check)
    statement = sql.SQL("""
        insert into ops.row_findings (batch_id, object_name, row_id, row_key, error_rules, warn_rules)
        select {batch}, {object}, _row_id, row_key, error_rules, warn_rules
        from (
            select l.ctid as _row_id, l.{key}::text as row_key,
                   array_remove(array[{errors}]::text[], null) as error_rules,
                   array_remove(array[{warns}]::text[], null) as warn_rules
            from {landing}.{table} l {joins}
            where l._batch_id = {batch}
        ) screened
        where cardinality(error_rules) > 0 or cardinality(warn_rules) > 0
    """).format(
        batch=sql.Literal(batch_id), object=sql.Literal(suite.object_name), key=sql.Identifier(suite.key),
        errors=sql.SQL(", ").join(error_checks) if error_checks else sql.SQL(""),
        warns=sql.SQL(", ").join(warn_checks) if warn_checks else sql.SQL(""),
        landing=sql.Identifier(LANDING), table=sql.Identifier(suite.object_name), joins=sql.SQL(" ").join(joins),
    )
    with wh.transaction():
        wh.execute("delete from ops.row_findings where batch_id = %s", (batch_id,))
        wh.execute(statement)
    return rule_counts(wh, batch_id)


def rule_counts(wh: psycopg.Connection, batch_id: int) -> list[RuleCount]:
    rows = wh.execute(
        """
        select rule, severity, count(*), (array_agg(row_key order by row_id))[1:%s]
        from (
            select row_id, row_key, unnest(error_rules) as rule, 'error' as severity
            from ops.row_findings where batch_id = %s
            union all
            select row_id, row_key, unnest(warn_rules), 'warn' from ops.row_findings where batch_id = %s
        ) broken
        group by rule, severity
        order by rule
        """,
        (SAMPLE_SIZE, batch_id, batch_id),
    ).fetchall()
    return [RuleCount(rule, severity, count, sample) for rule, severity, count, sample in rows]


def _predicate(wh: psycopg.Connection, suite: GateSuite, rule: RowRule, index: int, batch: tuple[int, int],
               joins: list) -> sql.Composable:
    alias = sql.Identifier(f"j{index}")
    batch_id, batch_rows = batch
    if rule.parent:
        if batch_rows < PROBE_SHARE * _estimated_rows(wh, RAW, rule.parent[0]):
            return _probed_reference(suite, rule, batch_id)
        parent, parent_key = rule.parent
        keys = sql.SQL("select {k} as parent_key from {raw}.{parent}").format(
            k=sql.Identifier(parent_key), raw=sql.Identifier(RAW), parent=sql.Identifier(parent))
        if parent == suite.object_name:  # a self-reference may point at a row of the same batch
            keys = sql.SQL("{} union select {} from {}.{} where _batch_id = {}").format(
                keys, sql.Identifier(parent_key), sql.Identifier(LANDING), sql.Identifier(parent),
                sql.Literal(batch_id))
        joins.append(sql.SQL("left join (select distinct parent_key from ({keys}) k) {a} "
                             "on {a}.parent_key = l.{col}").format(keys=keys, a=alias, col=sql.Identifier(rule.column)))
        return sql.SQL("(l.{col} is not null and {a}.parent_key is null)").format(
            col=sql.Identifier(rule.column), a=alias)
    if rule.joined_query:
        batch = sql.SQL("(select ctid as _row_id, * from {}.{} where _batch_id = {})").format(
            sql.Identifier(LANDING), sql.Identifier(suite.object_name), sql.Literal(batch_id))
        parts = rule.joined_query.split("{batch}")
        query = sql.Composed([sql.SQL(parts[0]), *(x for part in parts[1:] for x in (batch, sql.SQL(part)))])
        joins.append(sql.SQL("left join (select distinct _row_id from ({q}) q) {a} on {a}._row_id = l.ctid")
                     .format(q=query, a=alias))
        return sql.SQL("({}._row_id is not null)").format(alias)
    return rule.predicate


def _probed_reference(suite: GateSuite, rule: RowRule, batch_id: int) -> sql.Composable:
    """The reference as a lookup of each row's value in the parent's key index (and, for a self-reference, in
    the batch's own keys, hashed once)."""
    parent, parent_key = rule.parent
    names = {"col": sql.Identifier(rule.column), "key": sql.Identifier(parent_key), "raw": sql.Identifier(RAW),
             "landing": sql.Identifier(LANDING), "parent": sql.Identifier(parent), "batch": sql.Literal(batch_id)}
    in_raw = sql.SQL("exists (select 1 from {raw}.{parent} p where p.{key} = l.{col})").format(**names)
    if parent == suite.object_name:
        in_raw = sql.SQL("({} or l.{col} in (select b.{key} from {landing}.{parent} b "
                         "where b._batch_id = {batch} and b.{key} is not null))").format(in_raw, **names)
    return sql.SQL("(l.{col} is not null and not {in_raw})").format(in_raw=in_raw, **names)


def _estimated_rows(wh: psycopg.Connection, schema: str, table: str) -> float:
    """The planner's row count of a table (0 before its first analyze)."""
    return wh.execute("select greatest(reltuples, 0) from pg_class where oid = to_regclass(%s)",
                      (f"{schema}.{table}",)).fetchone()[0] or 0


def has_error_rows(wh: psycopg.Connection, batch_id: int) -> bool:
    return wh.execute("select exists (select 1 from ops.row_findings where batch_id = %s "
                      "and cardinality(error_rules) > 0)", (batch_id,)).fetchone()[0]


def quarantine(wh: psycopg.Connection, name: str, columns: list[Column], batch_id: int) -> int:
    """Copy the batch's rows that broke an error rule to quarantine.<object>, with the rules' names."""
    names = _names(columns)
    return wh.execute(
        sql.SQL("""
            insert into {quarantine}.{table} ({names}, _batch_id, _extracted_at, _failed_rules)
            select {l_names}, l._batch_id, l._extracted_at, f.error_rules
            from {landing}.{table} l
            join ops.row_findings f on f.batch_id = l._batch_id and f.row_id = l.ctid
            where l._batch_id = %s and cardinality(f.error_rules) > 0
        """).format(quarantine=sql.Identifier(QUARANTINE), landing=sql.Identifier(LANDING),
                    table=sql.Identifier(name), names=names, l_names=_names(columns, "l")),
        (batch_id,),
    ).rowcount


def publish(wh: psycopg.Connection, name: str, columns: list[Column], batch_id: int, *, has_errors: bool) -> int:
    """Append the batch's rows that broke no error rule to raw_crm.<object>."""
    clean = sql.SQL("""
        and not exists (select 1 from ops.row_findings f
                        where f.batch_id = l._batch_id and f.row_id = l.ctid and cardinality(f.error_rules) > 0)
    """) if has_errors else sql.SQL("")
    return wh.execute(
        sql.SQL("""
            insert into {raw}.{table} ({names}, _batch_id, _extracted_at)
            select {l_names}, l._batch_id, l._extracted_at
            from {landing}.{table} l
            where l._batch_id = %s {clean}
        """).format(raw=sql.Identifier(RAW), landing=sql.Identifier(LANDING), table=sql.Identifier(name),
                    names=_names(columns), l_names=_names(columns, "l"), clean=clean),
        (batch_id,),
    ).rowcount


def _names(columns: list[Column], alias: str | None = None) -> sql.Composable:
    if alias:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c.name))
                                  for c in columns)
    return sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
