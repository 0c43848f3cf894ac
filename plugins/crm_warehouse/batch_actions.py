"""Resolve a held batch: release it after a fix, or replay it from the source. Both are recorded.

* release: the batch's rows are still in landing. The row rules run again (the suite or the parents
  may have been fixed), rows breaking an error rule go to quarantine and the rest are published; the
  batch rule that held it is overridden by the person releasing it, who is recorded with the reason.
* replay: the batch's landed rows are archived in quarantine.<object> (rule superseded_by_replay) and
  the same range is extracted again from the source (which may have been fixed) as a new batch, gated
  like any other. The held batch becomes 'replayed'.
"""

from __future__ import annotations

import getpass
import logging

from crm_warehouse import access, audit, extract_load, gate_rules, objects, row_screen, settings, warehouse
from crm_warehouse.errors import WarehouseError
from crm_warehouse.warehouse import LANDING

log = logging.getLogger(__name__)


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def release(batch_id: int, actor: str, reason: str) -> extract_load.BatchResult:
    with warehouse.connect(settings.warehouse_dsn()) as wh:
        warehouse.init_warehouse(wh)
        access.assume(wh, access.LOADER)
        batch = _held_batch(wh, batch_id)
        if not batch["rows_extracted"]:
            raise WarehouseError(
                f"Batch {batch_id} of {batch['object_name']} was held before any row was extracted "
                f"({batch['held_rule']}); there is nothing to release. "
                f"Fix the cause and run `crmwh replay {batch_id}`.")
        obj = objects.get(batch["object_name"])
        columns = [c for c in warehouse.table_columns(wh, LANDING, obj.name) if not c.name.startswith("_")]
        result = extract_load.BatchResult(obj.name, "landed", batch_id, batch["rows_extracted"],
                                          watermark_from=batch["watermark_from"], watermark_to=batch["watermark_to"])
        extract_load.gate_and_publish(wh, gate_rules.load(obj.suite_path), columns, result, check_share=False)
        wh.execute(
            "insert into ops.batch_actions (batch_id, action, actor, reason, rows_published, rows_quarantined) "
            "values (%s, 'release', %s, %s, %s, %s)",
            (batch_id, actor, reason, result.rows_published, result.rows_quarantined),
        )
        audit.record(wh, "release", object_name=obj.name, batch_id=batch_id, rows=result.rows_published, who=actor,
                     detail={"reason": reason, "rows_quarantined": result.rows_quarantined})
    log.info("Batch %s of %s released by %s: %s published, %s quarantined", batch_id, obj.name, actor,
             result.rows_published, result.rows_quarantined)
    return result


def replay(batch_id: int, actor: str, reason: str) -> extract_load.BatchResult:
    with warehouse.connect(settings.warehouse_dsn()) as wh:
        warehouse.init_warehouse(wh)
        access.assume(wh, access.LOADER)
        batch = _held_batch(wh, batch_id)
        name = batch["object_name"]
        with wh.transaction():
            archived = _archive_landed_rows(wh, name, batch_id) if batch["rows_extracted"] else 0
            wh.execute("update ops.load_batches set status = 'replayed', rows_quarantined = %s where batch_id = %s",
                       (archived, batch_id))
            action_id = wh.execute(
                "insert into ops.batch_actions (batch_id, action, actor, reason, rows_quarantined) "
                "values (%s, 'replay', %s, %s, %s) returning action_id", (batch_id, actor, reason, archived),
            ).fetchone()[0]
            audit.record(wh, "replay", object_name=name, batch_id=batch_id, rows=archived, who=actor,
                         detail={"reason": reason, "rows_archived_to_quarantine": archived})
    try:
        result = extract_load.load_object(batch["object_name"], f"replay-of-{batch_id}")
    finally:
        with warehouse.connect(settings.warehouse_dsn()) as wh, wh.transaction():
            access.assume(wh, access.LOADER)
            new_batch = wh.execute(
                "select max(batch_id) from ops.load_batches where run_id = %s and batch_kind = 'extract'",
                (f"replay-of-{batch_id}",)
            ).fetchone()[0]
            wh.execute("update ops.load_batches set replayed_by_batch_id = %s where batch_id = %s",
                       (new_batch, batch_id))
            wh.execute("update ops.batch_actions set new_batch_id = %s where action_id = %s", (new_batch, action_id))
    log.info("Batch %s of %s replayed by %s as batch %s: %s", batch_id, batch["object_name"], actor,
             result.batch_id, result.status)
    return result


def _archive_landed_rows(wh, name: str, batch_id: int) -> int:
    """The held rows go to quarantine as superseded_by_replay: kept for audit, never published."""
    columns = [c for c in warehouse.table_columns(wh, LANDING, name) if not c.name.startswith("_")]
    wh.execute("delete from ops.row_findings where batch_id = %s", (batch_id,))
    wh.execute(
        "insert into ops.row_findings (batch_id, object_name, row_id, row_key, error_rules, warn_rules) "
        f"select _batch_id, %s, ctid, null, array['superseded_by_replay'], '{{}}' from {LANDING}.{name} "
        "where _batch_id = %s", (name, batch_id))
    archived = row_screen.quarantine(wh, name, columns, batch_id)
    extract_load.delete_landing(wh, name, batch_id)
    return archived


def _held_batch(wh, batch_id: int) -> dict:
    row = wh.execute(
        "select object_name, status, held_rule, rows_extracted, watermark_from, watermark_to "
        "from ops.load_batches where batch_id = %s", (batch_id,),
    ).fetchone()
    if row is None:
        raise WarehouseError(f"There is no batch {batch_id} in ops.load_batches.")
    fields = ("object_name", "status", "held_rule", "rows_extracted", "watermark_from", "watermark_to")
    batch = dict(zip(fields, row, strict=True))
    if batch["status"] != "held":
        raise WarehouseError(f"Batch {batch_id} of {batch['object_name']} is {batch['status']}, not held; "
                             f"only held batches can be released or replayed.")
    return batch
