"""Extract one CRM object incrementally, land it, gate it, publish it to raw_crm.

One batch per (object, run): rows with updated_at in (watermark, run cutoff] stream from the source
with binary COPY into the unlogged landing table, in the same transaction as the batch's ledger row.
The load gate validates the batch in landing; a passing batch is published to the append-only
raw table with one set-based INSERT ... SELECT, in the same transaction that records it and moves the
watermark. A failing batch is held: nothing is published and the watermark stays where it was.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from crm_warehouse import objects, settings, warehouse
from crm_warehouse.errors import BatchHeld, WarehouseError
from crm_warehouse.warehouse import LANDING, RAW, SOURCE_SCHEMA, Column

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    object_name: str
    status: str  # published | held | empty | already_loaded
    batch_id: int | None = None
    rows_extracted: int = 0
    rows_published: int = 0
    watermark_from: datetime | None = None
    watermark_to: datetime | None = None
    message: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        for field in ("watermark_from", "watermark_to"):
            data[field] = data[field].isoformat() if data[field] else None
        return data


def source_cutoff(source_dsn: str | None = None) -> datetime:
    """The run's upper watermark: the source's clock, read once so every object shares it."""
    with warehouse.connect(source_dsn or settings.source_dsn(), role="CRM source") as source:
        return source.execute("select now()").fetchone()[0]


def load_object(name: str, run_id: str, cutoff: datetime | None = None) -> BatchResult:
    obj = objects.get(name)
    dsns = settings.connections()
    with warehouse.connect(dsns.warehouse) as wh, warehouse.connect(dsns.source, role="CRM source") as source:
        warehouse.init_warehouse(wh)
        previous = _published_batch_for_run(wh, name, run_id)
        if previous:
            log.info("%s: run %s already published batch %s; nothing to do", name, run_id, previous)
            return BatchResult(name, "already_loaded", batch_id=previous)
        columns = _prepare_tables(wh, source, obj)
        _abandon_unfinished_batches(wh, name)
        cutoff = cutoff or source.execute("select now()").fetchone()[0]
        result = _extract_to_landing(wh, source, obj, columns, run_id, cutoff)
        if result.status == "empty":
            log.info("%s: nothing new since %s", name, result.watermark_from)
            return result
        _gate_and_publish(wh, obj, columns, result)
    return result


def _published_batch_for_run(wh: psycopg.Connection, name: str, run_id: str) -> int | None:
    row = wh.execute(
        "select batch_id from ops.load_batches where object_name = %s and run_id = %s and status = 'published'",
        (name, run_id),
    ).fetchone()
    return row[0] if row else None


def _prepare_tables(wh: psycopg.Connection, source: psycopg.Connection, obj: objects.CrmObject) -> list[Column]:
    """Create landing/raw tables on first sight; add new source columns; refuse dropped or retyped ones."""
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
        problems = "; ".join(filter(None, [f"missing: {', '.join(missing)}" if missing else "",
                                           f"retyped: {', '.join(retyped)}" if retyped else ""]))
        raise WarehouseError(
            f"{obj.name}: schema drift in {SOURCE_SCHEMA}.{obj.name} ({problems}); nothing was loaded. "
            f"Restore the column(s) in the source or migrate raw_crm.{obj.name} first."
        )
    new = [c for c in columns if c.name not in raw]
    if new:
        with wh.transaction():
            warehouse.add_columns(wh, obj.name, new)
        log.info("%s: added new source column(s) %s to landing and raw", obj.name, ", ".join(c.name for c in new))
    return columns


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
            _delete_landing(wh, name, batch_id)
    if stale:
        log.warning("%s: abandoned unfinished batch(es) %s", name, [b for (b,) in stale])


def _extract_to_landing(
    wh: psycopg.Connection,
    source: psycopg.Connection,
    obj: objects.CrmObject,
    columns: list[Column],
    run_id: str,
    cutoff: datetime,
) -> BatchResult:
    started = time.perf_counter()
    watermark_from = _current_watermark(wh, obj.name)
    with wh.transaction() as tx:
        batch_id, extracted_at = wh.execute(
            """
            insert into ops.load_batches (object_name, run_id, status, watermark_from, watermark_to)
            values (%s, %s, 'extracting', %s, %s) returning batch_id, started_at
            """,
            (obj.name, run_id, watermark_from, cutoff),
        ).fetchone()
        rows = _copy_batch(wh, source, obj, columns, batch_id, extracted_at, watermark_from, cutoff)
        # The new watermark is the newest change actually extracted, not the cutoff: the source's
        # timestamps may lag the source's clock (simulated history, replicas, batch imports).
        watermark_to = wh.execute(
            sql.SQL("select max(updated_at) from {}.{} where _batch_id = %s").format(
                sql.Identifier(LANDING), sql.Identifier(obj.name)), (batch_id,)
        ).fetchone()[0]
        result = BatchResult(obj.name, "landed", batch_id, rows, 0, watermark_from, watermark_to)
        if rows == 0:
            result.status = "empty"
            result.batch_id = None
            raise psycopg.Rollback(tx)  # nothing new: record nothing
        wh.execute(
            """
            update ops.load_batches set status = 'landed', rows_extracted = %s, landed_at = clock_timestamp(),
                   extract_seconds = %s, watermark_to = %s where batch_id = %s
            """,
            (rows, round(time.perf_counter() - started, 3), watermark_to, batch_id),
        )
    if result.status == "landed":
        log.debug("%s: batch %s landed %s rows", obj.name, result.batch_id, rows)
    return result


def _current_watermark(wh: psycopg.Connection, name: str) -> datetime | None:
    row = wh.execute("select watermark from ops.watermarks where object_name = %s", (name,)).fetchone()
    return row[0] if row else None


def _copy_batch(
    wh: psycopg.Connection,
    source: psycopg.Connection,
    obj: objects.CrmObject,
    columns: list[Column],
    batch_id: int,
    extracted_at: datetime,
    watermark_from: datetime | None,
    cutoff: datetime,
) -> int:
    """Stream the changed rows source -> landing with binary COPY; returns the row count."""
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    since = sql.Literal(watermark_from) if watermark_from else sql.SQL("'-infinity'::timestamptz")
    select = sql.SQL(
        "copy (select {names}, {batch}::bigint, {extracted}::timestamptz from {schema}.{table} "
        "where updated_at > {since} and updated_at <= {cutoff}) to stdout (format binary)"
    ).format(
        names=names,
        batch=sql.Literal(batch_id),
        extracted=sql.Literal(extracted_at),
        schema=sql.Identifier(SOURCE_SCHEMA),
        table=sql.Identifier(obj.name),
        since=since,
        cutoff=sql.Literal(cutoff),
    )
    insert = sql.SQL("copy {}.{} ({}, _batch_id, _extracted_at) from stdin (format binary)").format(
        sql.Identifier(LANDING), sql.Identifier(obj.name), names
    )
    with source.transaction(), source.cursor() as out, wh.cursor() as into:
        with out.copy(select) as reader, into.copy(insert) as writer:
            for chunk in reader:
                writer.write(chunk)
        return into.rowcount


def _gate_and_publish(wh: psycopg.Connection, obj: objects.CrmObject, columns: list[Column], result: BatchResult):
    from crm_warehouse import load_gate

    started = time.perf_counter()
    verdict = load_gate.validate_batch(obj, result.batch_id)
    validate_seconds = round(time.perf_counter() - started, 3)
    if not verdict.passed:
        _hold(wh, obj.name, result, verdict, validate_seconds)
        raise BatchHeld(verdict.message(obj.name, result.batch_id))
    started = time.perf_counter()
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    with wh.transaction():
        published = wh.execute(
            sql.SQL(
                "insert into {raw}.{table} ({names}, _batch_id, _extracted_at) "
                "select {names}, _batch_id, _extracted_at from {landing}.{table} where _batch_id = %s"
            ).format(raw=sql.Identifier(RAW), landing=sql.Identifier(LANDING), table=sql.Identifier(obj.name),
                     names=names),
            (result.batch_id,),
        ).rowcount
        _delete_landing(wh, obj.name, result.batch_id)
        wh.execute(
            """
            update ops.load_batches set status = 'published', rows_published = %s, validated_at = %s::timestamptz,
                   published_at = clock_timestamp(), validate_seconds = %s, publish_seconds = %s, validation = %s
            where batch_id = %s
            """,
            (published, verdict.validated_at, validate_seconds, round(time.perf_counter() - started, 3),
             Jsonb(verdict.summary()), result.batch_id),
        )
        wh.execute(
            """
            insert into ops.watermarks (object_name, watermark, last_batch_id) values (%s, %s, %s)
            on conflict (object_name) do update
               set watermark = excluded.watermark, last_batch_id = excluded.last_batch_id,
                   updated_at = clock_timestamp()
            """,
            (obj.name, result.watermark_to, result.batch_id),
        )
    result.status, result.rows_published = "published", published
    for warning in verdict.warnings:
        log.warning("%s: batch %s warning: %s", obj.name, result.batch_id, warning)
    log.info("%s: batch %s: %s rows changed in (%s, %s], gate passed (%d checks, %.1fs), published to %s.%s",
             obj.name, result.batch_id, published, result.watermark_from or "start", result.watermark_to,
             verdict.expectations_run, validate_seconds, RAW, obj.name)


def _hold(wh, name: str, result: BatchResult, verdict, validate_seconds: float) -> None:
    # The held rows stay in landing, where they can be inspected and later released or replayed.
    with wh.transaction():
        wh.execute(
            """
            update ops.load_batches set status = 'held', validated_at = %s::timestamptz, validate_seconds = %s,
                   message = %s, validation = %s where batch_id = %s
            """,
            (verdict.validated_at, validate_seconds, verdict.message(name, result.batch_id),
             Jsonb(verdict.summary()), result.batch_id),
        )
    result.status = "held"


def _delete_landing(wh: psycopg.Connection, name: str, batch_id: int) -> None:
    wh.execute(
        sql.SQL("delete from {}.{} where _batch_id = %s").format(sql.Identifier(LANDING), sql.Identifier(name)),
        (batch_id,),
    )
