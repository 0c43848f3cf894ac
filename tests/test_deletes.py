"""Hard-delete detection: rows deleted in the source become tombstones in raw (soft deletes with a time).

Runs on its own source and warehouse databases of the session's embedded server, loading objects
directly (extract_load.load_object, as the DAG's tasks do). Expected keys and counts are computed
from the two databases with plain SQL, never taken from what the loader returned. Tests build on
each other in order.
"""

from __future__ import annotations

import pytest

from crm_warehouse import batch_actions, delete_detection, extract_load, objects, simulator, warehouse
from crm_warehouse.errors import BatchHeld, DeletesRefused, WarehouseError
from tests.conftest import fresh_databases, query, scalar

SCALE = 0.03
# a change one second after the table's newest, in the simulator's time (its clock is behind the real one:
# now() would move the watermark past every row the simulator writes next)
NEXT_CHANGE = "(select max(updated_at) + interval '1 second' from crm.{})"
LEAVES = {"activities": "activity_id", "support_tickets": "ticket_id", "campaign_touches": "touch_id",
          "web_sessions": "session_id"}


@pytest.fixture(scope="module")
def deletes(embedded):
    source, wh = fresh_databases(embedded, "deletes_crm", "deletes_warehouse")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", wh)
        mp.setenv("CRM_SOURCE_DSN", source)
        simulator.simulate(source, scale=SCALE, seed=23, quiet=True)
        extract_load.load_all("initial")
        yield type("Deletes", (), {"source": source, "warehouse": wh})



def source_keys(dsn: str, table: str, key: str) -> set:
    return {r[0] for r in query(dsn, f"select {key} from crm.{table}")}


def tombstoned(wh: str, table: str, key: str) -> set:
    return {r[0] for r in query(wh, f"select {key} from raw_crm.{table} where _deleted_at is not null")}


def raw_keys_not_tombstoned(wh: str, table: str, key: str) -> set:
    return {r[0] for r in query(wh, f"select {key} from raw_crm.{table}")} - tombstoned(wh, table, key)


def test_raw_tables_made_before_delete_detection_gain_the_deleted_at_column(deletes):
    for schema in ("landing", "raw_crm", "quarantine"):
        query(deletes.warehouse, f"alter table {schema}.teams drop column _deleted_at")
    extract_load.load_object("teams", "upgrade")
    for schema in ("landing", "raw_crm", "quarantine"):
        assert scalar(deletes.warehouse, "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = "
                                         "%s::regclass and attname = '_deleted_at' and not attisdropped",
                      (f"{schema}.teams",)) == "timestamp with time zone", schema


def test_keys_deleted_in_the_source_get_one_tombstone_each(deletes, monkeypatch):
    src, wh = deletes.source, deletes.warehouse
    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "0")
    gone = {
        "activities": [r[0] for r in query(src, "select activity_id from crm.activities order by md5(activity_id::text)"
                                                " limit 4")],
        # not the newest change: without it the source would look stale to the load gate
        "support_tickets": [r[0] for r in query(src, "select ticket_id from crm.support_tickets order by updated_at"
                                                     " limit 2")],
    }
    columns = {t: [r[0] for r in query(wh, "select column_name from information_schema.columns where table_schema = "
                                           "'raw_crm' and table_name = %s order by ordinal_position", (t,))
                   if r[0] not in ("is_deleted", "updated_at", "_batch_id", "_extracted_at", "_deleted_at")]
               for t in gone}
    before = {t: {r[0]: r for r in query(wh, f"""
                  select distinct on ({LEAVES[t]}) {', '.join(columns[t])}, updated_at from raw_crm.{t}
                  where {LEAVES[t]} = any(%s) order by {LEAVES[t]}, updated_at desc, _batch_id desc""", (keys,))}
              for t, keys in gone.items()}
    watermarks = dict(query(wh, "select object_name, watermark from ops.watermarks"))
    source_counts = {t: scalar(src, f"select count(*) from crm.{t}") - len(keys) for t, keys in gone.items()}
    live_before = {t: len(raw_keys_not_tombstoned(wh, t, LEAVES[t])) for t in gone}
    for table, keys in gone.items():
        query(src, f"delete from crm.{table} where {LEAVES[table]} = any(%s)", (keys,))
    # activities also has a change to publish (tombstones follow the publish); support_tickets has none
    changed = [k for k in source_keys(src, "activities", "activity_id") if k not in gone["activities"]][0]
    query(src, f"update crm.activities set outcome = 'no_show', updated_at = {NEXT_CHANGE.format('activities')} "
               "where activity_id = %s", (changed,))

    results = {t: extract_load.load_object(t, "deletes-1") for t in gone}

    assert (results["activities"].status, results["activities"].rows_published) == ("published", 1)
    assert results["support_tickets"].status == "empty"
    for table, keys in gone.items():
        key = LEAVES[table]
        assert tombstoned(wh, table, key) == set(keys), table
        stones = query(wh, f"select {', '.join(columns[table])}, updated_at, is_deleted, _deleted_at, _extracted_at, "
                           f"_batch_id from raw_crm.{table} where _deleted_at is not null order by {key}")
        batch_ids = {row[-1] for row in stones}
        assert len(stones) == len(keys) and len(batch_ids) == 1
        for *copied, updated_at, is_deleted, deleted_at, extracted_at, _ in stones:
            previous = before[table][copied[0]]
            assert tuple(copied) == previous[:-1]  # every source column as in the key's latest version
            assert is_deleted and deleted_at == extracted_at == updated_at > previous[-1]
        # one published delete_detection batch per object, reconciled, watermark_to = the detection time
        ledger = query(wh, "select object_name, batch_kind, status, rows_extracted, rows_published, rows_quarantined, "
                           "watermark_to, published_at is not null from ops.load_batches where batch_id = %s",
                       tuple(batch_ids))
        assert ledger == [(table, "delete_detection", "published", len(keys), len(keys), 0, stones[0][-3], True)]
        assert query(wh, "select source_keys, raw_live_keys, deleted_keys, batch_id from ops.key_reconciliations "
                         "where object_name = %s and run_id = 'deletes-1'", (table,)) == [
            (source_counts[table], live_before[table], len(keys), batch_ids.pop())]
        # the staging models' dedup (latest by updated_at, then _batch_id) now sees a soft delete
        latest = dict(query(wh, f"select distinct on ({key}) {key}, is_deleted from raw_crm.{table} "
                                f"where {key} = any(%s) order by {key}, updated_at desc, _batch_id desc", (keys,)))
        assert latest == dict.fromkeys(keys, True)
    assert query(wh, "select batch_id from ops.batch_reconciliation where not is_reconciled") == []
    # the watermark moved only with the extract batch: not to the tombstones' detection time
    after = dict(query(wh, "select object_name, watermark from ops.watermarks"))
    assert after["support_tickets"] == watermarks["support_tickets"]
    assert after["activities"] == scalar(src, "select max(updated_at) from crm.activities")
    assert scalar(wh, "select count(*) from ops.watermarks w join ops.load_batches b on b.batch_id = w.last_batch_id "
                      "where b.batch_kind <> 'extract'") == 0

    # a second reconciliation finds nothing new and records that
    stones_before = scalar(wh, "select count(*) from raw_crm.activities where _deleted_at is not null")
    for table in gone:
        assert extract_load.load_object(table, "deletes-2").rows_tombstoned == 0
    assert scalar(wh, "select count(*) from raw_crm.activities where _deleted_at is not null") == stones_before
    assert query(wh, "select object_name, deleted_keys, batch_id from ops.key_reconciliations "
                     "where run_id = 'deletes-2' order by 1") == [("activities", 0, None), ("support_tickets", 0, None)]
    assert scalar(wh, "select count(*) from ops.load_batches where run_id = 'deletes-2'") == 0


def test_a_key_only_in_quarantine_is_not_tombstoned(deletes, monkeypatch):
    src, wh = deletes.source, deletes.warehouse
    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "0")
    new_id = scalar(src, "select max(ticket_id) + 1 from crm.support_tickets")
    query(src, "insert into crm.support_tickets select %s, 999999999, opened_at, closed_at, priority, category, "
               f"status, satisfaction_score, created_at, {NEXT_CHANGE.format('support_tickets')}, false "
               "from crm.support_tickets order by ticket_id limit 1", (new_id,))  # an unknown customer
    result = extract_load.load_object("support_tickets", "quarantined")
    assert (result.rows_published, result.rows_quarantined) == (0, 1)
    query(src, "delete from crm.support_tickets where ticket_id = %s", (new_id,))
    # a newer change, or the source would look stale (its newest change gone) and the batch be held
    query(src, f"update crm.support_tickets set updated_at = {NEXT_CHANGE.format('support_tickets')} "
               "where ticket_id = (select min(ticket_id) from crm.support_tickets)")
    assert extract_load.load_object("support_tickets", "quarantined-gone").rows_tombstoned == 0
    assert scalar(wh, "select count(*) from raw_crm.support_tickets where ticket_id = %s", (new_id,)) == 0


def test_deleting_the_newest_change_holds_the_batch_and_its_replay_writes_the_tombstone(deletes, monkeypatch):
    """The load gate's stale-source rule sees the newest updated_at go backwards; a replay resolves it."""
    src, wh = deletes.source, deletes.warehouse
    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "0")
    newest, newest_at = query(src, "select ticket_id, updated_at from crm.support_tickets "
                                   "order by updated_at desc, ticket_id limit 1")[0]
    query(src, "delete from crm.support_tickets where ticket_id = %s", (newest,))
    with pytest.raises(BatchHeld, match="held \\(stale_source\\)"):
        extract_load.load_object("support_tickets", "newest-gone")
    held = scalar(wh, "select batch_id from ops.load_batches where run_id = 'newest-gone'")
    assert newest not in tombstoned(wh, "support_tickets", "ticket_id")  # nothing reconciled while held

    query(src, "update crm.support_tickets set updated_at = %s::timestamptz + interval '1 second' "
               "where ticket_id = (select min(ticket_id) from crm.support_tickets)", (newest_at,))
    result = batch_actions.replay(held, "tester", "a newer change arrived")

    assert (result.status, result.rows_published, result.rows_tombstoned) == ("published", 1, 1)
    assert newest in tombstoned(wh, "support_tickets", "ticket_id")
    assert query(wh, "select b.batch_kind, b.rows_published from ops.load_batches h "
                     "join ops.load_batches b on b.batch_id = h.replayed_by_batch_id where h.batch_id = %s",
                 (held,)) == [("extract", 1)]


def test_the_simulators_hard_deletes_are_exactly_the_tombstoned_keys(deletes, monkeypatch):
    src, wh = deletes.source, deletes.warehouse
    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "0")
    keys = {name: obj.key for name, obj in objects.all_objects().items()}
    live = {name: raw_keys_not_tombstoned(wh, name, key) for name, key in keys.items()}
    stones = {name: tombstoned(wh, name, key) for name, key in keys.items()}
    simulator.advance(src, days=2, quiet=True)
    expected = {name: live[name] - source_keys(src, name, key) for name, key in keys.items()}
    assert sum(len(expected[name]) for name in LEAVES) > 0
    assert all(not expected[name] for name in set(keys) - set(LEAVES))  # only the leaf tables lose rows

    extract_load.load_all("advance")

    assert {name: tombstoned(wh, name, key) - stones[name] for name, key in keys.items()} == expected
    for name in LEAVES:  # raw's live keys are the source's keys again
        assert raw_keys_not_tombstoned(wh, name, keys[name]) == source_keys(src, name, keys[name]), name
    assert query(wh, "select batch_id from ops.batch_reconciliation where not is_reconciled") == []


def test_a_reconciliation_inside_the_window_is_skipped(deletes, monkeypatch):
    src, wh = deletes.source, deletes.warehouse
    victim = scalar(src, "select min(activity_id) from crm.activities")
    query(src, "delete from crm.activities where activity_id = %s", (victim,))
    reconciliations = scalar(wh, "select count(*) from ops.key_reconciliations where object_name = 'activities'")

    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "24")  # the last one was moments ago
    assert extract_load.load_object("activities", "window-1").rows_tombstoned == 0
    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "off")
    query(wh, "update ops.key_reconciliations set reconciled_at = reconciled_at - interval '25 hours' "
              "where object_name = 'activities'")
    assert extract_load.load_object("activities", "window-off").rows_tombstoned == 0
    assert scalar(wh, "select count(*) from ops.key_reconciliations "
                      "where object_name = 'activities'") == reconciliations
    assert victim not in tombstoned(wh, "activities", "activity_id")

    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "24")  # now the last one is 25 hours old
    assert extract_load.load_object("activities", "window-2").rows_tombstoned == 1
    assert victim in tombstoned(wh, "activities", "activity_id")

    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "-1")
    with pytest.raises(WarehouseError, match="CRMWH_DELETE_RECONCILE_HOURS must be 0 or more hours, or 'off'"):
        extract_load.load_object("activities", "window-bad")


@pytest.fixture
def scratch_copy(deletes):
    """web_sessions saved in the source's schema scratch and restored afterwards."""
    query(deletes.source, "create schema if not exists scratch")
    query(deletes.source, "create table scratch.web_sessions as select * from crm.web_sessions")
    yield
    query(deletes.source, "delete from crm.web_sessions")
    query(deletes.source, "insert into crm.web_sessions select * from scratch.web_sessions")
    query(deletes.source, "drop table scratch.web_sessions")


def guarded_state(wh: str) -> tuple:
    return (scalar(wh, "select count(*) from raw_crm.web_sessions where _deleted_at is not null"),
            scalar(wh, "select count(*) from ops.load_batches where batch_kind = 'delete_detection'"),
            scalar(wh, "select count(*) from ops.key_reconciliations"))


def test_a_source_missing_most_keys_writes_no_tombstone(deletes, monkeypatch, scratch_copy):
    src, wh = deletes.source, deletes.warehouse
    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "0")
    state = guarded_state(wh)
    live = raw_keys_not_tombstoned(wh, "web_sessions", "session_id")
    # the oldest 60% vanish, the newest stay (so the source does not look stale to the load gate)
    query(src, "delete from crm.web_sessions where session_id in (select session_id from crm.web_sessions "
               "order by updated_at limit (select count(*) * 6 / 10 from crm.web_sessions))")
    missing = sorted(live - source_keys(src, "web_sessions", "session_id"))

    with pytest.raises(DeletesRefused) as refused:
        extract_load.load_object("web_sessions", "truncated")

    message = str(refused.value)
    assert message.startswith("web_sessions: hard deletes refused (too_many_deletes): ")
    assert f"{len(missing)} of the {len(live)} live key(s)" in message and "CRMWH_DELETE_MAX_SHARE=0.5" in message
    assert f"sample keys {[str(k) for k in missing[:5]]}" in message
    assert guarded_state(wh) == state

    monkeypatch.setenv("CRMWH_DELETE_MAX_SHARE", "0.7")  # a deliberate purge is accepted with a higher share
    assert extract_load.load_object("web_sessions", "purge").rows_tombstoned == len(missing)
    assert tombstoned(wh, "web_sessions", "session_id") >= set(missing)

    # rows restored with their old updated_at are not extracted again: counted and left deleted
    query(src, "insert into crm.web_sessions select * from scratch.web_sessions s where session_id = any(%s)",
          (missing,))
    assert extract_load.load_object("web_sessions", "restored").rows_tombstoned == 0
    assert query(wh, "select deleted_keys, restored_keys from ops.key_reconciliations where run_id = 'restored'") == [
        (0, len(missing))]


def test_an_empty_source_table_writes_no_tombstone(deletes, monkeypatch, scratch_copy):
    """The load gate holds an object whose source is empty (stale source); reconciliation refuses on its own too."""
    src, wh = deletes.source, deletes.warehouse
    monkeypatch.setenv("CRMWH_DELETE_RECONCILE_HOURS", "0")
    state = guarded_state(wh)
    live = len(raw_keys_not_tombstoned(wh, "web_sessions", "session_id"))
    query(src, "truncate crm.web_sessions")
    with warehouse.connect(wh) as wh_conn, warehouse.connect(src) as source_conn:
        with pytest.raises(DeletesRefused, match=f"web_sessions: hard deletes refused \\(source_empty\\): "
                                                 f"crm.web_sessions returned no key at all, while raw_crm.web_sessions "
                                                 f"has {live} live key"):
            delete_detection.reconcile_if_due(wh_conn, source_conn, objects.get("web_sessions"), "empty")
    assert guarded_state(wh) == state


def test_status_shows_the_latest_reconciliation_and_the_tombstones(deletes):
    from rich.console import Console

    from crm_warehouse import status

    wh = deletes.warehouse
    console = Console(record=True, width=200)
    status.print_status(wh, console)
    lines = console.export_text().splitlines()
    cells = [[cell.strip() for cell in line.strip("│ ").split("│")]
             for line in lines if line.startswith("│ activities")]
    latest_batch, reconciliation = cells  # one row in each table
    extract_batch = scalar(wh, "select max(batch_id) from ops.load_batches where object_name = 'activities' "
                               "and batch_kind = 'extract'")
    assert latest_batch[1] == f"{extract_batch:,}"  # the latest batch shown is an extract, not tombstones
    stones = scalar(wh, "select count(*) from raw_crm.activities where _deleted_at is not null")
    assert reconciliation[-1] == f"{stones:,}"
