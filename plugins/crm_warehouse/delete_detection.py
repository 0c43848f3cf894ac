"""Hard-delete detection: reconcile an object's keys in raw_crm with the CRM source's, on a schedule.

A row hard-deleted in the source leaves no trace an incremental extract could see. Key reconciliation
finds it: the source's keys stream with binary COPY into a temp table of the warehouse, and every key
whose latest raw version is live (not a tombstone) but which the source no longer has gets a
tombstone: a new raw version, a copy of the latest one with is_deleted = true, updated_at moved up to
the detection time and _deleted_at = the detection time (the source's clock, comparable to its
updated_at). Being the newest version of its key, the tombstone reaches every model downstream as a
soft delete. The tombstones of one reconciliation are one published ledger batch (batch_kind
'delete_detection'); the watermark does not move. Every reconciliation, also one that finds nothing,
is a row of ops.key_reconciliations, committed in the transaction that writes its tombstones.

Guard: when the source returns no key at all, or more than CRMWH_DELETE_MAX_SHARE of the live keys
would be tombstoned, nothing is written and DeletesRefused names the object, the rule, the counts and
sample keys: a truncated or mis-pointed source must not delete the warehouse.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from crm_warehouse import audit, objects, settings, warehouse
from crm_warehouse.errors import DeletesRefused
from crm_warehouse.warehouse import RAW, SOURCE_SCHEMA

log = logging.getLogger(__name__)
SAMPLE_SIZE = 5
RELAY_BUFFER_BYTES = 1 << 20


@dataclass
class KeyCounts:
    detected_at: datetime  # the source's clock when its keys were read
    source_keys: int
    raw_live_keys: int
    deleted_keys: int  # live in raw, missing from the source
    restored_keys: int  # tombstoned earlier, in the source again


def reconcile_if_due(wh: psycopg.Connection, source: psycopg.Connection, obj: objects.CrmObject,
                     run_id: str) -> int:
    """Reconcile the object's keys when its last reconciliation is old enough; returns the tombstones written."""
    hours = settings.delete_reconcile_hours()
    if hours is None:
        return 0
    started = time.perf_counter()
    with wh.transaction():
        wh.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"crmwh.reconcile.{obj.name}",))
        previous = _last_reconciled_at(wh, obj.name)
        if not _due(wh, previous, hours) or not _raw_has_rows(wh, obj.name):
            return 0
        if previous is None and _first_load(wh, obj.name, run_id):
            _record_baseline(wh, source, obj.name, run_id)
            return 0
        counts = _compare_keys(wh, source, obj)
        _refuse_implausible(wh, obj, counts)
        batch_id = _write_tombstones(wh, obj, run_id, counts, previous) if counts.deleted_keys else None
        seconds = round(time.perf_counter() - started, 3)
        _record(wh, obj.name, run_id, counts, batch_id, seconds)
        if batch_id:
            audit.record(wh, "tombstones", object_name=obj.name, run_id=run_id, batch_id=batch_id,
                         rows=counts.deleted_keys, detail={"source_keys": counts.source_keys})
    log.info("%s: key reconciliation: %d key(s) in %s.%s, %d live in %s.%s, %d missing: %s (%.1fs)",
             obj.name, counts.source_keys, SOURCE_SCHEMA, obj.name, counts.raw_live_keys, RAW, obj.name,
             counts.deleted_keys, f"tombstones in batch {batch_id}" if batch_id else "nothing to tombstone", seconds)
    if counts.restored_keys:
        log.warning("%s: %d key(s) tombstoned earlier are in %s.%s again with no newer change; they stay deleted "
                    "in the warehouse until the source changes them (ops.key_reconciliations.restored_keys)",
                    obj.name, counts.restored_keys, SOURCE_SCHEMA, obj.name)
    return counts.deleted_keys


def _last_reconciled_at(wh: psycopg.Connection, name: str) -> datetime | None:
    return wh.execute("select max(reconciled_at) from ops.key_reconciliations where object_name = %s",
                      (name,)).fetchone()[0]


def _due(wh: psycopg.Connection, previous: datetime | None, hours: float) -> bool:
    if previous is None or hours == 0:
        return True
    return wh.execute("select %s::timestamptz <= now() - make_interval(secs => %s)",
                      (previous, hours * 3600)).fetchone()[0]


def _first_load(wh: psycopg.Connection, name: str, run_id: str) -> bool:
    return not wh.execute(
        "select exists (select 1 from ops.load_batches where object_name = %s and status = 'published' "
        "and batch_kind = 'extract' and run_id <> %s)", (name, run_id)).fetchone()[0]


def _record_baseline(wh: psycopg.Connection, source: psycopg.Connection, name: str, run_id: str) -> None:
    """The first load copied every source key, so it is the first reconciliation: comparing would cost a
    full key scan (a minute at scale 10) to find nothing. A key deleted since is found when the next is due."""
    keys = wh.execute("select coalesce(sum(rows_published), 0) from ops.load_batches where object_name = %s "
                      "and run_id = %s and status = 'published'", (name, run_id)).fetchone()[0]
    detected_at = source.execute("select now()").fetchone()[0]
    _record(wh, name, run_id, KeyCounts(detected_at, keys, keys, 0, 0), None, 0.0)
    log.info("%s: first load, recorded as the first key reconciliation (%d keys)", name, keys)


def _raw_has_rows(wh: psycopg.Connection, name: str) -> bool:
    """A first load that found nothing leaves raw empty: there is nothing to reconcile yet."""
    return wh.execute(sql.SQL("select exists (select 1 from {}.{})").format(
        sql.Identifier(RAW), sql.Identifier(name))).fetchone()[0]


def _compare_keys(wh: psycopg.Connection, source: psycopg.Connection, obj: objects.CrmObject) -> KeyCounts:
    """Copy the source's keys into crmwh_source_keys; classify each raw key's latest version in crmwh_key_status."""
    key_type = next(c.type for c in warehouse.table_columns(wh, RAW, obj.name) if c.name == obj.key)
    key = sql.Identifier(obj.key)
    wh.execute(sql.SQL("create temp table crmwh_source_keys (key {}) on commit drop").format(sql.SQL(key_type)))
    with source.transaction():
        # one snapshot: the keys are exactly those the source had at detected_at
        source.execute("set transaction isolation level repeatable read")
        detected_at = source.execute("select now()").fetchone()[0]
        select = sql.SQL("copy (select {} from {}.{}) to stdout (format binary)").format(
            key, sql.Identifier(SOURCE_SCHEMA), sql.Identifier(obj.name))
        with source.cursor() as out, wh.cursor() as into:
            with out.copy(select) as reader, into.copy("copy crmwh_source_keys (key) from stdin (format binary)") \
                    as writer:
                _relay(reader, writer)
            source_keys = into.rowcount
    wh.execute("analyze crmwh_source_keys")
    wh.execute(sql.SQL("""
        create temp table crmwh_key_status on commit drop as
        select latest.{key} as key, latest._deleted_at is null as live, s.key is not null as in_source
        from (select distinct on ({key}) {key}, _deleted_at from {raw}.{table}
              order by {key}, updated_at desc, _batch_id desc) latest
        -- a join, not exists() per row: that is a per-row scan once the keys outgrow work_mem
        left join (select distinct key from crmwh_source_keys) s on s.key = latest.{key}
    """).format(key=key, raw=sql.Identifier(RAW), table=sql.Identifier(obj.name)))
    live, deleted, restored = wh.execute(
        "select count(*) filter (where live), count(*) filter (where live and not in_source), "
        "count(*) filter (where not live and in_source) from crmwh_key_status").fetchone()
    return KeyCounts(detected_at, source_keys, live, deleted, restored)


def _relay(reader, writer) -> None:
    """COPY data arrives one message per row: written in 1 MB pieces, the relay is 3 times faster."""
    buffer = bytearray()
    for chunk in reader:
        buffer += chunk
        if len(buffer) >= RELAY_BUFFER_BYTES:
            writer.write(buffer)
            buffer = bytearray()
    writer.write(buffer)


def _refuse_implausible(wh: psycopg.Connection, obj: objects.CrmObject, counts: KeyCounts) -> None:
    max_share = settings.delete_max_share()
    live, deleted = counts.raw_live_keys, counts.deleted_keys
    if counts.source_keys == 0 and live and max_share < 1:
        rule = "source_empty"
        finding = f"{SOURCE_SCHEMA}.{obj.name} returned no key at all, while {RAW}.{obj.name} has {live} live key(s)"
    elif deleted > max_share * live:
        rule = "too_many_deletes"
        finding = (f"{deleted} of the {live} live key(s) of {RAW}.{obj.name} ({deleted / live:.0%}) are missing "
                   f"from {SOURCE_SCHEMA}.{obj.name}, more than CRMWH_DELETE_MAX_SHARE={max_share:g}")
    else:
        return
    sample = [r[0] for r in wh.execute(
        "select s.key::text from crmwh_key_status s where live and not in_source order by s.key limit %s",
        (SAMPLE_SIZE,))]
    raise DeletesRefused(
        f"{obj.name}: hard deletes refused ({rule}): {finding}; sample keys {sample}. No tombstone was written "
        f"and {RAW}.{obj.name} is unchanged (its changed rows, if any, were published). Check that CRM_SOURCE_DSN "
        f"points at the right database and that {SOURCE_SCHEMA}.{obj.name} is complete; if the rows were deleted "
        f"on purpose, run again with CRMWH_DELETE_MAX_SHARE=1."
    )


def _write_tombstones(wh: psycopg.Connection, obj: objects.CrmObject, run_id: str, counts: KeyCounts,
                      previous: datetime | None) -> int:
    """One published ledger batch holding a tombstone for every live key missing from the source."""
    batch_id = wh.execute(
        """
        insert into ops.load_batches (object_name, run_id, batch_kind, status, watermark_from, watermark_to,
                                      rows_extracted, landed_at, validated_at)
        values (%s, %s, 'delete_detection', 'published', %s, %s, %s, clock_timestamp(), clock_timestamp())
        returning batch_id
        """,
        (obj.name, run_id, previous, counts.detected_at, counts.deleted_keys),
    ).fetchone()[0]
    columns = [c.name for c in warehouse.table_columns(wh, RAW, obj.name)]
    # a copy of the latest version; is_deleted only where the object has it
    overrides = {"is_deleted": sql.SQL("true"), "updated_at": sql.SQL("greatest(updated_at, %(at)s)"),
                 "_batch_id": sql.SQL("%(batch)s"), "_extracted_at": sql.SQL("%(at)s"),
                 "_deleted_at": sql.SQL("%(at)s")}
    values = sql.SQL(", ").join(overrides.get(c, sql.Identifier(c)) for c in columns)
    published = wh.execute(sql.SQL("""
        insert into {raw}.{table} ({columns})
        select {values}
        from (select distinct on (r.{key}) r.*
              from {raw}.{table} r join crmwh_key_status k on k.key = r.{key} and k.live and not k.in_source
              order by r.{key}, r.updated_at desc, r._batch_id desc) latest
    """).format(raw=sql.Identifier(RAW), table=sql.Identifier(obj.name), key=sql.Identifier(obj.key),
                columns=sql.SQL(", ").join(map(sql.Identifier, columns)), values=values),
        {"at": counts.detected_at, "batch": batch_id}).rowcount
    wh.execute("update ops.load_batches set rows_published = %s, published_at = clock_timestamp(), "
               "published_xid = pg_current_xact_id()::text::bigint where batch_id = %s", (published, batch_id))
    return batch_id


def _record(wh: psycopg.Connection, name: str, run_id: str, counts: KeyCounts, batch_id: int | None,
            seconds: float) -> None:
    wh.execute(
        """
        insert into ops.key_reconciliations (object_name, run_id, reconciled_at, source_keys, raw_live_keys,
                                             deleted_keys, restored_keys, batch_id, seconds)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (name, run_id, counts.detected_at, counts.source_keys, counts.raw_live_keys, counts.deleted_keys,
         counts.restored_keys, batch_id, seconds),
    )
