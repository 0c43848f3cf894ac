"""Bodies of the crm_ingest tasks; the DAG file only wires them."""

from __future__ import annotations

import logging
from datetime import datetime

from crm_warehouse import extract_load, objects, settings, warehouse
from crm_warehouse.errors import BatchHeld, WarehouseError

log = logging.getLogger(__name__)


def plan_run(backfill_until: datetime | None = None) -> str:
    """Prepare the warehouse and fix the run's cutoff so every object is extracted up to the same instant.

    The cutoff is the source's clock; a backfill run (`airflow backfill create`) stops at the end of its
    interval instead, so backfilling past intervals in order loads the changes of each interval in turn.
    """
    dsns = settings.connections()
    with warehouse.connect(dsns.warehouse) as wh:
        warehouse.init_warehouse(wh)
    cutoff = extract_load.source_cutoff(dsns.source)
    if backfill_until is not None and backfill_until < cutoff:
        cutoff = backfill_until
        log.info("Backfill run: extracting changes up to the end of its interval")
    log.info("Extracting changes up to %s for %d CRM objects", cutoff.isoformat(), len(objects.all_objects()))
    return cutoff.isoformat()


def backfill_until(context) -> datetime | None:
    """The end of a backfill run's interval, else None (scheduled and manual runs read up to now)."""
    run_type = context["dag_run"].run_type
    is_backfill = getattr(run_type, "value", run_type) == "backfill"
    return context["data_interval_end"] if is_backfill else None


def load_object(name: str, cutoff: str, run_id: str) -> dict:
    """Extract, gate and publish one object. A held batch fails the task without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        result = extract_load.load_object(name, run_id, datetime.fromisoformat(cutoff))
    except BatchHeld as exc:
        log.error("%s", exc)
        raise AirflowFailException(str(exc)) from None
    except WarehouseError as exc:
        log.error("%s", exc)
        raise
    return result.to_dict()


def summarize(results: list[dict]) -> dict:
    """Log what the run published. With nothing published the task is skipped, so it emits no event on the
    raw asset and crm_transform does not run for nothing."""
    from airflow.sdk.exceptions import AirflowSkipException

    published = [r for r in results if r["status"] == "published"]
    rows = sum(r["rows_published"] for r in published)
    quarantined = sum(r.get("rows_quarantined", 0) for r in published)
    tombstoned = sum(r.get("rows_tombstoned", 0) for r in results)
    if not published and not tombstoned:
        raise AirflowSkipException("Nothing new in any CRM object: raw_crm is unchanged, "
                                   "crm_transform is not triggered")
    log.info("Published %d row(s) in %d batch(es) to raw_crm, quarantined %d; %d object(s) had nothing new; "
             "%d row(s) hard-deleted in the source got tombstones",
             rows, len(published), quarantined, sum(r["status"] == "empty" for r in results), tombstoned)
    return {"rows_published": rows, "rows_quarantined": quarantined, "batches": len(published),
            "rows_tombstoned": tombstoned}

