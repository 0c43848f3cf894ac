"""The bad-input corpus: each class of bad data injected into the source, and its exact outcome.

Runs on its own source and warehouse databases of the session's embedded server, loading objects
directly (extract_load.load_object, as the DAG's tasks do), so every test controls its batches.
Tests build on each other in order.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from crm_warehouse import batch_actions, cli, extract_load, objects, row_screen, settings, simulator
from crm_warehouse.errors import BatchHeld
from tests.conftest import fresh_databases, query, scalar

SCALE = 0.03
ONE_MB = "x" * (1024 * 1024)
EMOJI = "Zoë 😀 漢字 \u200b"


@pytest.fixture(scope="module")
def gates(embedded):
    source, wh = fresh_databases(embedded, "gates_crm", "gates_warehouse")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", wh)
        mp.setenv("CRM_SOURCE_DSN", source)
        simulator.simulate(source, scale=SCALE, seed=11, quiet=True)
        extract_load.load_all("initial")
        yield type("Gates", (), {"source": source, "warehouse": wh})


def touch_all(source: str, table: str) -> None:
    """Every row changes now, so the next batch is large and bad rows are a small share of it."""
    query(source, f"update crm.{table} set updated_at = now() - interval '1 second'")


def insert_like(source: str, table: str, key: str, new_key, **values) -> None:
    """A copy of the table's first row with a new key and the given column values, changed now."""
    assignments = ", ".join(f"{column} = %({column})s" for column in values)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(f"create temp table template as select * from crm.{table} order by {key} limit 1")
        conn.execute(f"update template set {key} = %(new_key)s, updated_at = now() - interval '1 second'"
                     + (f", {assignments}" if assignments else ""), {"new_key": new_key, **values})
        conn.execute(f"insert into crm.{table} select * from template")


def quarantined(wh: str, table: str, key: str, batch_id: int) -> dict:
    rows = query(wh, f"select {key}, _failed_rules from quarantine.{table} where _batch_id = %s", (batch_id,))
    return {row_key: set(rules) for row_key, rules in rows}


def test_row_level_failures_are_quarantined_with_their_rules_and_the_rest_published(gates):
    src, wh = gates.source, gates.warehouse
    query(src, "alter table crm.contacts drop constraint contacts_pkey")
    query(src, "alter table crm.contacts alter column contact_id drop not null")
    for table in ("customers", "contacts", "orders", "order_lines"):
        touch_all(src, table)
    top = {t: scalar(src, f"select max({k}) from crm.{t}") for t, k in
           (("customers", "customer_id"), ("contacts", "contact_id"), ("orders", "order_id"),
            ("order_lines", "order_line_id"))}
    c = top["customers"]
    insert_like(src, "customers", "customer_id", c + 1, email="not-an-email")
    insert_like(src, "customers", "customer_id", c + 2, phone="12345")
    insert_like(src, "customers", "customer_id", c + 3, signed_up_at=datetime.now(UTC) + timedelta(days=1))
    insert_like(src, "customers", "customer_id", c + 4, account_id=999_999_999)
    insert_like(src, "customers", "customer_id", c + 5, email="bad", country="xx")
    insert_like(src, "customers", "customer_id", c + 6, first_name=EMOJI, last_name=ONE_MB)
    k = top["contacts"]
    insert_like(src, "contacts", "contact_id", None)
    insert_like(src, "contacts", "contact_id", k + 1, job_title="first copy")
    insert_like(src, "contacts", "contact_id", k + 1, job_title="second copy")
    o = top["orders"]
    insert_like(src, "orders", "order_id", o + 1, currency="XYZ")
    insert_like(src, "orders", "order_id", o + 2, customer_id=c + 4)  # its customer is quarantined
    insert_like(src, "orders", "order_id", o + 3, customer_id=c + 6)
    line = top["order_lines"]
    insert_like(src, "order_lines", "order_line_id", line + 1, quantity=-1, order_id=o + 3)
    insert_like(src, "order_lines", "order_line_id", line + 2, unit_price=-5, order_id=o + 3)
    insert_like(src, "order_lines", "order_line_id", line + 3, quantity=2_147_483_647,
                unit_price="9999999999.99", order_id=o + 3)

    refund = scalar(src, "select max(refund_id) from crm.refunds")
    order_currency = scalar(src, "select currency from crm.orders order by order_id limit 1")  # o + 3's
    other_currency = "EUR" if order_currency != "EUR" else "USD"
    insert_like(src, "refunds", "refund_id", refund + 1, order_id=o + 3, currency=other_currency)
    insert_like(src, "refunds", "refund_id", refund + 2, order_id=o + 3, currency=order_currency)

    results = {name: extract_load.load_object(name, "corpus")
               for name in ("customers", "contacts", "orders", "order_lines", "refunds")}

    assert {n: r.status for n, r in results.items()} == dict.fromkeys(results, "published")
    assert quarantined(wh, "customers", "customer_id", results["customers"].batch_id) == {
        c + 1: {"match_regex(email)"},
        c + 2: {"match_regex(phone)"},
        c + 3: {"timestamp_in_future"},
        c + 4: {"reference(account_id)"},
        c + 5: {"match_regex(email)", "match_regex(country)"},
    }
    contacts = query(wh, "select contact_id, job_title, _failed_rules from quarantine.contacts where _batch_id = %s",
                     (results["contacts"].batch_id,))
    assert sorted((cid, job, tuple(rules)) for cid, job, rules in contacts if cid is not None) == [
        (k + 1, "first copy", ("unique(contact_id)",)), (k + 1, "second copy", ("unique(contact_id)",))]
    assert [tuple(rules) for cid, _, rules in contacts if cid is None] == [("not_null(contact_id)",)]
    assert quarantined(wh, "orders", "order_id", results["orders"].batch_id) == {
        o + 1: {"in_set(currency)"}, o + 2: {"reference(customer_id)"}}
    assert quarantined(wh, "order_lines", "order_line_id", results["order_lines"].batch_id) == {
        line + 1: {"between(quantity)"}, line + 2: {"between(unit_price)"}}
    # a refund in another currency than its order's
    assert quarantined(wh, "refunds", "refund_id", results["refunds"].batch_id) == {refund + 1: {"currency_of_order"}}

    warned = query(wh, "select row_key, warn_rules from ops.row_findings where batch_id = %s "
                       "and cardinality(warn_rules) > 0", (results["customers"].batch_id,))
    assert warned == [(str(c + 6), ["length_between(last_name)"])]  # warn: recorded, still published

    # strings and numbers at the limits are published byte for byte
    assert query(wh, "select first_name, last_name = %s from raw_crm.customers where customer_id = %s",
                 (ONE_MB, c + 6)) == [(EMOJI, True)]
    assert query(wh, "select quantity, unit_price::text from raw_crm.order_lines where order_line_id = %s",
                 (line + 3,)) == [(2_147_483_647, "9999999999.99")]

    # nothing lost: every changed source row is in raw or in quarantine for its batch, exactly once
    for name, result in results.items():
        key = objects.get(name).key
        published = Counter(r[0] for r in query(wh, f"select {key} from raw_crm.{name} where _batch_id = %s",
                                                 (result.batch_id,)))
        held_back = Counter(r[0] for r in query(wh, f"select {key} from quarantine.{name} where _batch_id = %s",
                                                 (result.batch_id,)))
        extracted = Counter(r[0] for r in query(src, f"select {key} from crm.{name} where updated_at > %s",
                                                 (result.watermark_from,)))
        assert published + held_back == extracted, name
        assert result.rows_extracted == result.rows_published + result.rows_quarantined


def test_the_ledger_reconciles_every_batch(gates):
    rows = query(gates.warehouse, "select batch_id, status, is_reconciled from ops.batch_reconciliation")
    assert rows and all(ok for _, _, ok in rows), rows
    assert scalar(gates.warehouse, "select sum(rows_quarantined) from ops.load_batches where run_id = 'corpus'") == 13


def test_gx_validated_each_batch_and_data_docs_render(gates):
    validation = scalar(gates.warehouse, "select validation from ops.load_batches where run_id = 'corpus' "
                                         "and object_name = 'orders'")
    findings = {f["rule"]: f["unexpected_count"] for f in validation["findings"]}
    assert findings == {"in_set(currency)": 1, "reference(customer_id)": 1}
    assert validation["expectations_run"] == 7  # 4 suite rules, 1 reference, valid_encoding, failing share
    page = validation["data_docs_page"]
    assert cli.main(["quality-docs"]) == 0
    html = open(page, encoding="utf-8").read()
    assert "in_set(currency)" in html and "reference(customer_id)" in html


def test_data_docs_render_only_the_results_without_a_page(gates):
    from crm_warehouse import gx_docs

    gx_docs.build()
    keys = gx_docs._file_context().validation_results_store.list_keys()
    pages = [gx_docs._page_path(key) for key in keys]
    assert len(keys) >= 2 and all(page.exists() for page in pages)
    pages[0].unlink()
    an_hour_ago = time.time() - 3600  # a page already rendered keeps it (pages older than 30 days are pruned)
    os.utime(pages[1], (an_hour_ago, an_hour_ago))
    gx_docs.build()
    assert pages[0].exists() and pages[1].stat().st_mtime == an_hour_ago


def test_too_many_failing_rows_hold_the_batch_until_it_is_released(gates, capsys):
    src, wh = gates.source, gates.warehouse
    before = scalar(wh, "select count(*) from raw_crm.leads")
    query(src, "update crm.leads set email = 'broken', updated_at = now() - interval '1 second' "
               "where lead_id in (select lead_id from crm.leads order by lead_id limit 15)")
    query(src, "update crm.leads set updated_at = now() - interval '1 second' "
               "where lead_id in (select lead_id from crm.leads order by lead_id desc limit 45)")
    with pytest.raises(BatchHeld) as held:
        extract_load.load_object("leads", "too-many")
    message = str(held.value)
    bad = [r[0] for r in query(src, "select lead_id from crm.leads where email = 'broken'")]
    assert "leads" in message and "more than 5%" in message and any(str(b) in message for b in bad)
    assert scalar(wh, "select count(*) from raw_crm.leads") == before
    batch_id, status, rule = query(wh, "select batch_id, status, held_rule from ops.load_batches "
                                       "where run_id = 'too-many'")[0]
    assert (status, rule) == ("held", "max_failing_share")
    assert scalar(wh, "select count(*) from landing.leads where _batch_id = %s", (batch_id,)) == 60

    with pytest.raises(BatchHeld, match=f"batch {batch_id} is held"):
        extract_load.load_object("leads", "while-held")

    assert cli.main(["release", str(batch_id), "--reason", "bulk import with known bad emails"]) == 0
    assert "45 row(s) published, 15 quarantined" in capsys.readouterr().out
    assert scalar(wh, "select count(*) from raw_crm.leads") == before + 45
    assert query(wh, "select action, reason, rows_published, rows_quarantined from ops.batch_actions "
                     "where batch_id = %s", (batch_id,)) == [("release", "bulk import with known bad emails", 45, 15)]
    assert scalar(wh, "select status from ops.load_batches where batch_id = %s", (batch_id,)) == "published"
    assert query(wh, "select action, object_name, rows, detail->>'status', actor = %s from ops.audit_log "
                     "where batch_id = %s order by audit_id", (batch_actions.default_actor(), batch_id)) == [
        ("load", "leads", 0, "held", True), ("load", "leads", 45, "published", True),
        ("release", "leads", 45, None, True)]


def test_a_batch_far_outside_the_objects_history_is_held(gates):
    src, wh = gates.source, gates.warehouse
    for run in range(3):
        query(src, "update crm.products set updated_at = now() - interval '1 second' "
                   "where product_id = (select min(product_id) from crm.products)")
        assert extract_load.load_object("products", f"small-{run}").rows_extracted == 1
    touch_all(src, "products")
    products = scalar(src, "select count(*) from crm.products")
    assert products > 10
    with pytest.raises(BatchHeld, match="held \\(volume\\)"):
        extract_load.load_object("products", "bulk")
    batch_id = scalar(wh, "select batch_id from ops.load_batches where run_id = 'bulk'")
    result = cli.main(["release", str(batch_id), "--reason", "price list reloaded on purpose"])
    assert result == 0
    assert scalar(wh, "select rows_published from ops.load_batches where batch_id = %s", (batch_id,)) == products


def test_schema_drift_holds_before_extracting_and_replay_loads_after_the_fix(gates):
    src, wh = gates.source, gates.warehouse
    raw_before = scalar(wh, "select count(*) from raw_crm.teams")
    query(src, "alter table crm.teams rename column name to team_name")
    touch_all(src, "teams")
    with pytest.raises(BatchHeld) as held:
        extract_load.load_object("teams", "drift")
    assert "schema drift" in str(held.value) and "name" in str(held.value)
    batch_id, rows, rule = query(wh, "select batch_id, rows_extracted, held_rule from ops.load_batches "
                                     "where run_id = 'drift'")[0]
    assert (rows, rule) == (0, "schema_drift")
    assert cli.main(["release", str(batch_id), "--reason", "x"]) == 2  # nothing to release: replay it

    query(src, "alter table crm.teams rename column team_name to name")
    assert cli.main(["replay", str(batch_id), "--reason", "column name restored"]) == 0
    assert scalar(wh, "select status from ops.load_batches where batch_id = %s", (batch_id,)) == "replayed"
    new_batch = scalar(wh, "select replayed_by_batch_id from ops.load_batches where batch_id = %s", (batch_id,))
    teams = scalar(src, "select count(*) from crm.teams")
    assert scalar(wh, "select rows_published from ops.load_batches where batch_id = %s", (new_batch,)) == teams
    assert scalar(wh, "select count(*) from raw_crm.teams") == raw_before + teams
    assert query(wh, "select action, rows, detail->>'reason' from ops.audit_log where batch_id in (%s, %s) "
                     "order by audit_id", (batch_id, new_batch)) == [
        ("load", 0, None), ("replay", 0, "column name restored"), ("load", teams, None)]


def test_a_stale_source_is_held(gates, monkeypatch):
    src, wh = gates.source, gates.warehouse
    # the source was restored from an older copy: its newest change is behind what was loaded
    query(src, "update crm.users set updated_at = updated_at - interval '3650 days'")
    with pytest.raises(BatchHeld, match="stale source"):
        extract_load.load_object("users", "restored")
    held = scalar(wh, "select batch_id from ops.load_batches where run_id = 'restored'")
    query(src, "update crm.users set updated_at = now() - interval '1 second'")
    assert cli.main(["replay", str(held), "--reason", "replica caught up"]) == 0

    # the source stopped changing: its newest change is older than the allowed staleness
    monkeypatch.setenv("CRMWH_SOURCE_MAX_STALENESS_HOURS", "0.0001")
    query(src, "update crm.users set updated_at = now() - interval '1 hour' "
               "where user_id = (select min(user_id) from crm.users)")
    with pytest.raises(BatchHeld, match="CRMWH_SOURCE_MAX_STALENESS_HOURS"):
        extract_load.load_object("users", "stale-clock")
    assert query(wh, "select held_rule, rows_extracted from ops.load_batches where run_id = 'stale-clock'") == [
        ("stale_source", 0)]


def test_an_empty_batch_records_nothing(gates):
    before = scalar(gates.warehouse, "select count(*) from ops.load_batches")
    assert extract_load.load_object("fx_rates", "nothing-new").status == "empty"
    assert scalar(gates.warehouse, "select count(*) from ops.load_batches") == before


def test_status_shows_held_batches_and_quarantine_totals(gates, capsys):
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "held batch" in out and "users" in out
    assert "Quarantined rows" in out and "customers" in out and "leads" in out


def test_suite_files_are_valid_and_every_rule_has_a_severity():
    for path in sorted((settings.PROJECT_ROOT / "expectations").glob("crm_*.json")):
        doc = json.loads(path.read_text())
        assert all(e["meta"]["severity"] in ("error", "warn") for e in doc["expectations"]), path
        from crm_warehouse import gate_rules

        suite = gate_rules.load(path)
        assert suite.row_rules, path


def test_text_that_is_not_utf8_is_quarantined_escaped_and_the_load_does_not_crash(gates, monkeypatch):
    """A legacy SQL_ASCII source can hold any bytes; the warehouse (UTF-8) cannot store them as text."""
    admin = settings.with_database(gates.warehouse, "postgres")
    query(admin, "drop database if exists gates_ascii_crm")
    query(admin, "create database gates_ascii_crm encoding 'SQL_ASCII' lc_collate 'C' lc_ctype 'C' "
                 "template template0")
    ascii_source = settings.with_database(gates.warehouse, "gates_ascii_crm")
    columns = query(gates.source, "select column_name, format_type(atttypid, atttypmod) from "
                                  "information_schema.columns c join pg_attribute a on a.attname = c.column_name "
                                  "and a.attrelid = 'crm.teams'::regclass where table_schema = 'crm' "
                                  "and table_name = 'teams' order by ordinal_position")
    query(ascii_source, "create schema crm")
    query(ascii_source, f"create table crm.teams ({', '.join(f'{n} {t}' for n, t in columns)})")
    template = dict(zip([n for n, _ in columns], query(gates.source, "select * from crm.teams limit 1")[0],
                        strict=True))
    with psycopg.connect(ascii_source, autocommit=True) as conn:
        for team_id, name in ((9001, b"caf\xe9 latin-1"), (9002, b"plain ascii"), (9003, "Zoë 😀".encode())):
            row = {**template, "team_id": team_id, "updated_at": datetime.now(UTC) - timedelta(seconds=1)}
            names = [n for n, _ in columns]
            placeholders = ", ".join("convert_from(%s::bytea, 'SQL_ASCII')" if n == "name" else "%s" for n in names)
            conn.execute(f"insert into crm.teams ({', '.join(names)}) values ({placeholders})",
                         [name if n == "name" else row[n] for n in names])
    monkeypatch.setenv("CRM_SOURCE_DSN", ascii_source)
    result = extract_load.load_object("teams", "legacy-encoding")
    assert (result.status, result.rows_published, result.rows_quarantined) == ("published", 2, 1)
    assert query(gates.warehouse, "select team_id, name, _failed_rules from quarantine.teams where _batch_id = %s",
                 (result.batch_id,)) == [(9001, "caf\\xe9 latin-1", ["valid_encoding"])]
    assert dict(query(gates.warehouse, "select team_id, name from raw_crm.teams where _batch_id = %s",
                      (result.batch_id,))) == {9002: "plain ascii", 9003: "Zoë 😀"}


def test_a_new_source_column_is_added_downstream_and_reported_in_the_ledger(gates):
    src, wh = gates.source, gates.warehouse
    query(src, "alter table crm.products add column color text")
    query(src, "update crm.products set color = 'teal', updated_at = now() - interval '1 second' "
               "where product_id = (select min(product_id) from crm.products)")
    result = extract_load.load_object("products", "new-column")
    assert (result.status, result.rows_published) == ("published", 1)
    assert scalar(wh, "select color from raw_crm.products where _batch_id = %s", (result.batch_id,)) == "teal"
    assert scalar(wh, "select count(*) from raw_crm.products where color is null") > 0  # older rows read null
    assert scalar(wh, "select columns_added from ops.load_batches where batch_id = %s", (result.batch_id,)) == [
        "color"]
    assert query(wh, "select object_name, column_name, column_type, run_id from ops.schema_changes") == [
        ("products", "color", "text", "new-column")]
    for schema in ("landing", "quarantine"):
        assert scalar(wh, "select count(*) from information_schema.columns where table_schema = %s "
                          "and table_name = 'products' and column_name = 'color'", (schema,)) == 1


def test_a_row_committed_late_is_caught_by_the_lookback_and_nothing_is_loaded_twice(gates):
    src, wh = gates.source, gates.warehouse
    watermark = scalar(wh, "select watermark from ops.watermarks where object_name = 'campaigns'")
    already_loaded = scalar(src, "select count(*) from crm.campaigns where updated_at > %s - interval '10 minutes' "
                                 "and updated_at <= %s", (watermark, watermark))
    late = scalar(src, "select max(campaign_id) from crm.campaigns") + 1
    insert_like(src, "campaigns", "campaign_id", late)
    # committed after the last run, but stamped two minutes before the newest change it loaded
    query(src, "update crm.campaigns set updated_at = %s - interval '2 minutes' where campaign_id = %s",
          (watermark, late))
    before = scalar(wh, "select count(*) from raw_crm.campaigns")
    result = extract_load.load_object("campaigns", "late-commit")
    assert (result.status, result.rows_extracted, result.rows_published) == ("published", 1, 1)
    assert scalar(wh, "select campaign_id from raw_crm.campaigns where _batch_id = %s", (result.batch_id,)) == late
    assert scalar(wh, "select rows_reread from ops.load_batches where batch_id = %s",
                  (result.batch_id,)) == already_loaded >= 1
    assert scalar(wh, "select count(*) from raw_crm.campaigns") == before + 1
    assert extract_load.load_object("campaigns", "again").status == "empty"  # re-reads alone are no batch
    assert scalar(wh, "select count(*) from raw_crm.campaigns") == before + 1


def test_quarantine_list_shows_each_rule_with_counts_and_sample_keys(gates, capsys):
    wh = gates.warehouse
    batch_id, rule, rows = query(wh, "select _batch_id, r, count(*) from quarantine.leads, unnest(_failed_rules) r "
                                     "where email = 'broken' group by 1, 2")[0]
    keys = sorted(str(k) for (k,) in query(wh, "select lead_id from quarantine.leads where _batch_id = %s "
                                               "and %s = any(_failed_rules)", (batch_id, rule)))
    assert cli.main(["quarantine", "list", "--object", "leads"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if rule in line and f" {batch_id} " in line)
    assert f" {rows} " in line and ", ".join(keys[:5]) in line
    assert cli.main(["quarantine", "list", "--object", "no_such_object"]) == 2
    assert "Unknown CRM object" in capsys.readouterr().err


def test_a_small_batch_resolves_references_by_key_lookup_with_the_same_verdicts(gates):
    """A batch far smaller than its parents looks each reference up in the parent's key index
    (row_screen.PROBE_SHARE) instead of hashing every parent key: the same rows pass and fail."""
    src, wh = gates.source, gates.warehouse
    parents = scalar(wh, "select reltuples from pg_class where oid = 'raw_crm.subscriptions'::regclass")
    assert 3 < row_screen.PROBE_SHARE * parents  # the batch below is small enough to probe
    top = scalar(src, "select max(subscription_id) from crm.subscriptions")
    existing = scalar(src, "select min(subscription_id) from crm.subscriptions")
    insert_like(src, "subscriptions", "subscription_id", top + 1, previous_subscription_id=existing)  # in raw
    insert_like(src, "subscriptions", "subscription_id", top + 2, previous_subscription_id=top + 1)  # same batch
    insert_like(src, "subscriptions", "subscription_id", top + 3, previous_subscription_id=999_999_999,
                customer_id=999_999_999)
    result = extract_load.load_object("subscriptions", "probe")
    assert (result.status, result.rows_extracted, result.rows_published) == ("published", 3, 2)
    assert quarantined(wh, "subscriptions", "subscription_id", result.batch_id) == {
        top + 3: {"reference(previous_subscription_id)", "reference(customer_id)"}}
