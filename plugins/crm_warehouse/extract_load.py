"""Extract one CRM object incrementally, land it, gate it, publish it to raw_crm.

One batch per (object, run): rows with updated_at in (watermark, run cutoff] stream from the source
with binary COPY into the unlogged landing table, in the same transaction as the batch's ledger row.
The load gate screens the batch in landing (load_gate.py): rows that break an error rule go to
quarantine.<object>, the rest to the append-only raw table, both with set-based INSERT ... SELECT in
the transaction that records the counts and moves the watermark. A batch that breaks a batch rule
(schema drift, stale source, volume far outside the object's history, too many failing rows) is held:
nothing is published, the watermark stays, and the object loads nothing more until the batch is
released or replayed (batch_actions.py). After a batch is published (or when there was nothing new),
the object's keys are reconciled with the source on a schedule, and rows hard-deleted there get
tombstones in raw (delete_detection.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from crm_warehouse import access, audit, delete_detection, gate_rules, objects, settings, source_copy, warehouse
from crm_warehouse.errors import BatchHeld, WarehouseError
from crm_warehouse.warehouse import LANDING, QUARANTINE, RAW, SOURCE_SCHEMA, Column

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    object_name: str
    status: str  # published | held | empty | already_loaded
    batch_id: int | None = None
    rows_extracted: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    watermark_from: datetime | None = None
    watermark_to: datetime | None = None
    message: str = ""
    rows_tombstoned: int = 0  # rows hard-deleted in the source, found by key reconciliation after the batch

    def to_dict(self) -> dict:
        data = asdict(self)
        for field in ("watermark_from", "watermark_to"):
            data[field] = data[field].isoformat() if data[field] else None
        return data


def source_cutoff(source_dsn: str | None = None) -> datetime:
    """The run's upper watermark: the source's clock, read once so every object shares it."""
    with warehouse.connect(source_dsn or settings.source_dsn(), role="CRM source") as source:
        return source.execute("select now()").fetchone()[0]


def load_object(name: str, run_id: str, cutoff: datetime | None = None, *, check_volume: bool = True) -> BatchResult:
    """Extract, gate and publish one object's changes. The caller has initialized the warehouse for the run
    (warehouse.init_warehouse: load_all, crm_ingest's plan_run, replay): checking every role, grant and ledger
    table again for each object cost ~25 ms an object, half of a run with nothing new."""
    obj = objects.get(name)
    dsns = settings.connections()
    with warehouse.connect(dsns.warehouse) as wh, warehouse.connect(dsns.source, role="CRM source") as source:
        access.assume(wh, access.LOADER)
        previous = _published_batch_for_run(wh, name, run_id)
        if previous:
            log.info("%s: run %s already published batch %s; nothing to do", name, run_id, previous)
            return BatchResult(name, "already_loaded", batch_id=previous)
        _refuse_while_held(wh, name)
        _abandon_unfinished_batches(wh, name)
        cutoff = cutoff or source.execute("select now()").fetchone()[0]
        columns, added = _prepare_tables(wh, source, obj, run_id, cutoff)
        _check_freshness(wh, source, obj, run_id, cutoff)
        result = _extract_to_landing(wh, source, obj, columns, run_id, cutoff, added)
        if result.status == "empty":
            log.info("%s: nothing new since %s", name, result.watermark_from)
        else:
            suite = gate_rules.load(obj.suite_path)
            if check_volume:
                _check_volume(wh, suite, result)
            gate_and_publish(wh, suite, columns, result)
        # after the publish, so the keys just published are in raw before they are compared
        result.rows_tombstoned = delete_detection.reconcile_if_due(wh, source, obj, run_id)
    return result


def load_all(run_id: str) -> list[BatchResult]:
    """Every CRM object in one process, parents first (the order of crm_ingest's tasks): CLI-less runs
    such as the benchmark and the tests."""
    with warehouse.connect(settings.warehouse_dsn()) as wh:
        warehouse.init_warehouse(wh)
    return [load_object(name, run_id) for tier in objects.load_tiers() for name in tier]


def _published_batch_for_run(wh: psycopg.Connection, name: str, run_id: str) -> int | None:
    try:
        row = wh.execute(
            "select batch_id from ops.load_batches where object_name = %s and run_id = %s and status = 'published' "
            "and batch_kind = 'extract'",
            (name, run_id),
        ).fetchone()
    except psycopg.errors.UndefinedTable as exc:
        raise WarehouseError(f"{name}: the warehouse has no load ledger (ops.load_batches): it was not "
                             "initialized. Run `crmwh init`, or load through crm_ingest or load_all, which "
                             "initialize it first.") from exc
    return row[0] if row else None


def _refuse_while_held(wh: psycopg.Connection, name: str) -> None:
    held = wh.execute(
        "select batch_id, held_rule from ops.load_batches where object_name = %s and status = 'held' "
        "order by batch_id limit 1", (name,),
    ).fetchone()
    if held:
        raise BatchHeld(
            f"{name}: batch {held[0]} is held ({held[1]}), so nothing more of {name} is loaded until it is "
            f"resolved: `crmwh release {held[0]}` after a fix, or `crmwh replay {held[0]}` to extract it again. "
            f"Details: `crmwh status` and ops.load_batches."
        )


def _prepare_tables(wh: psycopg.Connection, source: psycopg.Connection, obj: objects.CrmObject,
                    run_id: str, cutoff: datetime) -> tuple[list[Column], list[str]]:
    """Create landing/raw/quarantine tables on first sight; add new source columns; hold on dropped or retyped ones.

    Returns the source's columns and the names of those added by this call (recorded in the ledger).
    """
    columns = warehouse.source_columns(source, obj.name)
    if obj.key not in {c.name for c in columns} or "updated_at" not in {c.name for c in columns}:
        raise WarehouseError(
            f"{SOURCE_SCHEMA}.{obj.name} must have the key column {obj.key!r} and 'updated_at' "
            f"(see docs/source-contract.md)."
        )
    warehouse.ensure_object_tables(wh, obj.name, obj.key, columns)
    raw = {c.name: c.type for c in warehouse.table_columns(wh, RAW, obj.name)}
    missing = [c for c in raw if c not in {col.name for col in columns} and not c.startswith("_")]
    retyped = [f"{c.name} ({raw[c.name]} -> {c.type})" for c in columns if c.name in raw and raw[c.name] != c.type]
    if missing or retyped:
        problems = "; ".join(filter(None, [f"missing or renamed: {', '.join(missing)}" if missing else "",
                                           f"retyped: {', '.join(retyped)}" if retyped else ""]))
        _hold_before_extract(
            wh, obj.name, run_id, cutoff, "schema_drift",
            f"schema drift in {SOURCE_SCHEMA}.{obj.name} ({problems}); nothing was extracted. Restore the "
            f"column(s) in the source or migrate raw_crm.{obj.name} (and landing, quarantine) to match, then replay.",
            sample=missing + retyped,
        )
    new = [c for c in columns if c.name not in raw]
    if new:
        with wh.transaction():
            warehouse.add_columns(wh, obj.name, new)
            for column in new:
                wh.execute("insert into ops.schema_changes (object_name, column_name, column_type, change, run_id) "
                           "values (%s, %s, %s, 'added', %s)", (obj.name, column.name, column.type, run_id))
        log.warning("%s: new source column(s) %s added to landing, raw and quarantine (ops.schema_changes)",
                    obj.name, ", ".join(f"{c.name} {c.type}" for c in new))
    return columns, [c.name for c in new]


def _check_freshness(wh: psycopg.Connection, source: psycopg.Connection, obj: objects.CrmObject,
                     run_id: str, cutoff: datetime) -> None:
    """Hold when the source is behind what was already loaded, or older than the configured staleness."""
    newest = source.execute(
        sql.SQL("select max(updated_at) from {}.{} where updated_at <= %s").format(
            sql.Identifier(SOURCE_SCHEMA), sql.Identifier(obj.name)), (cutoff,)
    ).fetchone()[0]
    watermark = _current_watermark(wh, obj.name)
    if watermark and (newest is None or newest < watermark):
        _hold_before_extract(
            wh, obj.name, run_id, cutoff, "stale_source",
            f"stale source: the newest change in {SOURCE_SCHEMA}.{obj.name} ({newest}) is older than the newest "
            f"change already loaded ({watermark}); the source looks restored from an older copy or is a lagging "
            f"replica. Nothing was extracted; replay once the source has caught up.",
            sample=[str(newest)],
        )
    limit = settings.source_max_staleness_hours()
    if limit is not None:
        freshest = source.execute(
            sql.SQL("select max(newest) from ({}) t").format(sql.SQL(" union all ").join(
                sql.SQL("select max(updated_at) as newest from {}.{}").format(
                    sql.Identifier(SOURCE_SCHEMA), sql.Identifier(name))
                for name in objects.all_objects()))
        ).fetchone()[0]
        if freshest is None or (cutoff - freshest).total_seconds() > limit * 3600:
            _hold_before_extract(
                wh, obj.name, run_id, cutoff, "stale_source",
                f"stale source: its newest change of any object ({freshest}) is more than "
                f"CRMWH_SOURCE_MAX_STALENESS_HOURS={limit:g} h before its clock ({cutoff}). Nothing was extracted; "
                f"replay once the source is being updated again.",
                sample=[str(freshest)],
            )


def _hold_before_extract(wh: psycopg.Connection, name: str, run_id: str, cutoff: datetime, rule: str,
                         message: str, sample: list) -> None:
    """A batch held before any row was extracted: recorded with no rows, so it can be replayed."""
    with wh.transaction():
        batch_id = wh.execute(
            """
            insert into ops.load_batches (object_name, run_id, status, watermark_from, watermark_to, rows_extracted,
                                          held_rule, validation)
            values (%s, %s, 'held', %s, %s, 0, %s, %s) returning batch_id
            """,
            (name, run_id, _current_watermark(wh, name), cutoff, rule,
             Jsonb({"findings": [{"rule": rule, "severity": "error", "scope": "batch", "sample_keys": sample}]})),
        ).fetchone()[0]
        text = f"Batch {batch_id} of {name} held ({rule}): {message}"
        wh.execute("update ops.load_batches set message = %s where batch_id = %s", (text, batch_id))
        audit.record(wh, "load", object_name=name, run_id=run_id, batch_id=batch_id, rows=0,
                     detail={"status": "held", "rule": rule, "rows_extracted": 0})
    raise BatchHeld(text)


def _check_volume(wh: psycopg.Connection, suite: gate_rules.GateSuite, result: BatchResult) -> None:
    """Hold a batch far outside the object's recent incremental batches (never on the first loads)."""
    history = [r[0] for r in wh.execute(
        """
        select rows_extracted from ops.load_batches
        where object_name = %s and status = 'published' and batch_kind = 'extract' and watermark_from is not null
          and rows_extracted > 0
        order by batch_id desc limit %s
        """, (result.object_name, suite.settings["volume_history"]),
    ).fetchall()]
    if len(history) < suite.settings["volume_min_history"]:
        return
    ratio = suite.settings["volume_ratio"]
    low, high = min(history) / ratio, max(history) * ratio
    if low <= result.rows_extracted <= high:
        return
    finding = {"rule": "volume", "severity": "error", "scope": "batch", "unexpected_count": result.rows_extracted,
               "sample_keys": _sample_keys(wh, suite, result.batch_id)}
    message = (
        f"Batch {result.batch_id} of {result.object_name} held (volume): {result.rows_extracted} rows, outside "
        f"[{low:.0f}, {high:.0f}] = the last {len(history)} incremental batches ({min(history)}-{max(history)} rows) "
        f"divided/multiplied by {ratio:g}; sample keys {finding['sample_keys']}. Nothing was published; the rows "
        f"are in {LANDING}.{result.object_name}. If the volume is genuine run `crmwh release {result.batch_id}`, "
        f"else `crmwh replay {result.batch_id}` after fixing the source."
    )
    _hold(wh, result, "volume", message, {"findings": [finding]})
    raise BatchHeld(message)


def _sample_keys(wh: psycopg.Connection, suite: gate_rules.GateSuite, batch_id: int) -> list:
    return [r[0] for r in wh.execute(
        sql.SQL("select {k}::text from {l}.{t} where _batch_id = %s order by ctid limit 5").format(
            k=sql.Identifier(suite.key), l=sql.Identifier(LANDING), t=sql.Identifier(suite.object_name)),
        (batch_id,)).fetchall()]


def _abandon_unfinished_batches(wh: psycopg.Connection, name: str) -> None:
    """A batch left in landing by a crashed run is dropped; its rows are re-extracted by this run."""
    with wh.transaction():
        stale = wh.execute(
            """
            update ops.load_batches set status = 'failed', message = 'abandoned by a crashed run; re-extracted later'
            where object_name = %s and status in ('extracting', 'landed') returning batch_id
            """,
            (name,),
        ).fetchall()
        for (batch_id,) in stale:
            delete_landing(wh, name, batch_id)
    if stale:
        log.warning("%s: abandoned unfinished batch(es) %s", name, [b for (b,) in stale])


def _extract_to_landing(
    wh: psycopg.Connection,
    source: psycopg.Connection,
    obj: objects.CrmObject,
    columns: list[Column],
    run_id: str,
    cutoff: datetime,
    columns_added: list[str],
) -> BatchResult:
    started = time.perf_counter()
    watermark_from = _current_watermark(wh, obj.name)
    with wh.transaction() as tx:
        batch_id, extracted_at = wh.execute(
            """
            insert into ops.load_batches (object_name, run_id, status, watermark_from, watermark_to, columns_added)
            values (%s, %s, 'extracting', %s, %s, %s) returning batch_id, started_at
            """,
            (obj.name, run_id, watermark_from, cutoff, columns_added or None),
        ).fetchone()
        lookback = timedelta(minutes=settings.extract_lookback_minutes())
        copied = source_copy.copy_batch(wh, source, obj.name, columns, (batch_id, extracted_at),
                                        watermark_from - lookback if watermark_from else None, cutoff)
        reread = _drop_rereads(wh, obj, batch_id) if watermark_from else 0
        rows = copied - reread
        # The new watermark is the newest change actually extracted, not the cutoff: the source's
        # timestamps may lag the source's clock (simulated history, replicas, batch imports).
        watermark_to = wh.execute(
            sql.SQL("select max(updated_at) from {}.{} where _batch_id = %s").format(
                sql.Identifier(LANDING), sql.Identifier(obj.name)), (batch_id,)
        ).fetchone()[0]
        result = BatchResult(obj.name, "landed", batch_id, rows,
                             watermark_from=watermark_from, watermark_to=watermark_to)
        if rows == 0:
            result.status = "empty"
            result.batch_id = None
            raise psycopg.Rollback(tx)  # nothing new: record nothing
        wh.execute(
            """
            update ops.load_batches set status = 'landed', rows_extracted = %s, rows_reread = %s,
                   landed_at = clock_timestamp(), extract_seconds = %s, watermark_to = %s where batch_id = %s
            """,
            (rows, reread, round(time.perf_counter() - started, 3), watermark_to, batch_id),
        )
    if result.status == "landed":
        log.debug("%s: batch %s landed %s rows", obj.name, result.batch_id, rows)
    return result


def _drop_rereads(wh: psycopg.Connection, obj: objects.CrmObject, batch_id: int) -> int:
    """Rows the look-back read again: already in raw or quarantine with the same (key, updated_at)."""
    names = {"landing": sql.Identifier(LANDING), "raw": sql.Identifier(RAW), "table": sql.Identifier(obj.name),
             "quarantine": sql.Identifier(QUARANTINE), "key": sql.Identifier(obj.key)}
    dropped = 0
    for statement in (
        """delete from {landing}.{table} l where l._batch_id = %s and (
               exists (select 1 from {raw}.{table} r where r.{key} = l.{key} and r.updated_at = l.updated_at)
            or exists (select 1 from {quarantine}.{table} q where q.{key} = l.{key} and q.updated_at = l.updated_at
                       and not 'superseded_by_replay' = any(q._failed_rules)))""",
        # a keyless row cannot be matched by key: it is the quarantined keyless row of the same updated_at
        """delete from {landing}.{table} l where l._batch_id = %s and l.{key} is null and exists (
               select 1 from {quarantine}.{table} q where q.{key} is null and q.updated_at = l.updated_at
               and not 'superseded_by_replay' = any(q._failed_rules))""",
    ):
        dropped += wh.execute(sql.SQL(statement).format(**names), (batch_id,)).rowcount
    return dropped


def _current_watermark(wh: psycopg.Connection, name: str) -> datetime | None:
    row = wh.execute("select watermark from ops.watermarks where object_name = %s", (name,)).fetchone()
    return row[0] if row else None


def gate_and_publish(wh: psycopg.Connection, suite: gate_rules.GateSuite, columns: list[Column],
                     result: BatchResult, *, check_share: bool = True) -> None:
    """Screen and validate a landed batch; quarantine its error rows and publish the rest, or hold it."""
    from crm_warehouse import load_gate, row_screen

    started = time.perf_counter()
    verdict = load_gate.validate_batch(wh, suite, result.batch_id, result.rows_extracted, check_share)
    validate_seconds = round(time.perf_counter() - started, 3)
    name = suite.object_name
    if not verdict.passed:
        message = verdict.message(name, result.batch_id)
        _hold(wh, result, verdict.held_rule(), message, verdict.summary(), validate_seconds)
        raise BatchHeld(message)
    started = time.perf_counter()
    with wh.transaction():
        has_errors = row_screen.has_error_rows(wh, result.batch_id)
        quarantined = row_screen.quarantine(wh, name, columns, result.batch_id) if has_errors else 0
        with warehouse.publishing_into_raw(wh, name, objects.get(name).key):
            published = row_screen.publish(wh, name, columns, result.batch_id, has_errors=has_errors)
        delete_landing(wh, name, result.batch_id)
        run_id = wh.execute(
            """
            update ops.load_batches set status = 'published', rows_published = %s, rows_quarantined = %s,
                   validated_at = %s::timestamptz, published_at = clock_timestamp(), validate_seconds = %s,
                   publish_seconds = %s, validation = %s, message = null, held_rule = null,
                   published_xid = pg_current_xact_id()::text::bigint
            where batch_id = %s
            returning run_id
            """,
            (published, quarantined, verdict.validated_at, validate_seconds,
             round(time.perf_counter() - started, 3), Jsonb(verdict.summary()), result.batch_id),
        ).fetchone()[0]
        audit.record(wh, "load", object_name=name, run_id=run_id, batch_id=result.batch_id, rows=published,
                     detail={"status": "published", "rows_extracted": result.rows_extracted,
                             "rows_quarantined": quarantined})
        if result.watermark_to is not None:
            wh.execute(
                """
                insert into ops.watermarks (object_name, watermark, last_batch_id) values (%s, %s, %s)
                on conflict (object_name) do update
                   set watermark = greatest(ops.watermarks.watermark, excluded.watermark),
                       last_batch_id = excluded.last_batch_id, updated_at = clock_timestamp()
                """,
                (name, result.watermark_to, result.batch_id),
            )
    result.status, result.rows_published, result.rows_quarantined = "published", published, quarantined
    warehouse.refresh_raw_statistics(wh, name, published)
    for warning in verdict.warnings:
        log.warning("%s: batch %s warning: %s", name, result.batch_id, warning)
    for finding in verdict.quarantine_rules:
        log.warning("%s: batch %s quarantined rows breaking %s", name, result.batch_id, finding.describe())
    log.info("%s: batch %s: %s rows changed in (%s, %s]: %s published to %s.%s, %s quarantined "
             "(%d checks, %.1fs; GX result %s)",
             name, result.batch_id, result.rows_extracted, result.watermark_from or "start", result.watermark_to,
             published, RAW, name, quarantined, verdict.expectations_run, validate_seconds, verdict.data_docs_page)


def _hold(wh, result: BatchResult, rule: str, message: str, validation: dict, validate_seconds=None) -> None:
    # The held rows stay in landing, where they can be inspected and later released or replayed.
    with wh.transaction():
        run_id = wh.execute(
            """
            update ops.load_batches set status = 'held', held_rule = %s, validated_at = clock_timestamp(),
                   validate_seconds = %s, message = %s, validation = %s
            where batch_id = %s
            returning run_id
            """,
            (rule, validate_seconds, message, Jsonb(validation), result.batch_id),
        ).fetchone()[0]
        audit.record(wh, "load", object_name=result.object_name, run_id=run_id, batch_id=result.batch_id, rows=0,
                     detail={"status": "held", "rule": rule, "rows_extracted": result.rows_extracted})
    result.status = "held"


def delete_landing(wh: psycopg.Connection, name: str, batch_id: int) -> None:
    """Drop the batch's rows from landing: a truncate when no other batch is there (the usual case)."""
    table = sql.SQL("{}.{}").format(sql.Identifier(LANDING), sql.Identifier(name))
    others = wh.execute(sql.SQL("select exists (select from {} where _batch_id <> %s)").format(table),
                        (batch_id,)).fetchone()[0]
    if others:
        wh.execute(sql.SQL("delete from {} where _batch_id = %s").format(table), (batch_id,))
    else:
        wh.execute(sql.SQL("truncate {}").format(table))
