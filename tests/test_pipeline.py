"""The whole pipeline at a small scale, through real Airflow DAG runs, dbt and GX, on the embedded server.

Tests in this module build on each other in order: first load, rerun, incremental load, a held batch.
"""

from __future__ import annotations

import pytest

from crm_warehouse import airflow_runner, extract_load, objects, simulator, status, transform
from crm_warehouse.errors import BatchHeld
from tests.conftest import query, scalar

SCALE = 0.02


MARTS_COMPARED = ("mart_customer_ltv", "mart_customer_churn", "mart_churn_monthly", "mart_mrr_movements",
                  "mart_cohort_retention", "mart_customer_rfm", "mart_ltv_cohorts", "mart_funnel_conversion",
                  "mart_sales_performance", "mart_pipeline_daily", "mart_deal_touchpoints")
FIRST_RUN_MARTS: dict[str, str] = {}


@pytest.fixture(scope="module")
def pipeline(embedded):
    simulator.simulate(embedded.source, scale=SCALE, seed=7, quiet=True)
    env = airflow_runner.airflow_env(embedded)
    airflow_runner.migrate_metadata(env)
    airflow_runner.dags_test("crm_ingest", env=env, echo=lambda *_: None)
    airflow_runner.dags_test("crm_transform", env=env, echo=lambda *_: None)
    FIRST_RUN_MARTS.update(mart_digests(embedded.warehouse))
    return env


def mart_digests(dsn: str) -> dict[str, str]:
    """Each mart's content, order-independent: md5 of its sorted rows."""
    return {
        mart: scalar(dsn, f"select md5(string_agg(t::text, '|' order by t::text)) from marts.{mart} t")
        for mart in MARTS_COMPARED
    }


def ledger_totals(dsn: str) -> tuple:
    return query(dsn, "select count(*), coalesce(sum(rows_published), 0) from ops.load_batches")[0]


def raw_counts(dsn: str) -> dict[str, int]:
    return {name: scalar(dsn, f"select count(*) from raw_crm.{name}") for name in objects.all_objects()}


def test_first_run_publishes_every_source_row_to_raw(embedded, pipeline):
    for name in objects.all_objects():
        source_rows = scalar(embedded.source, f"select count(*) from crm.{name}")
        assert scalar(embedded.warehouse, f"select count(*) from raw_crm.{name}") == source_rows, name
    statuses = query(embedded.warehouse, "select distinct status from ops.load_batches")
    assert statuses == [("published",)]
    unreconciled = query(embedded.warehouse, "select batch_id from ops.batch_reconciliation where not is_reconciled")
    assert unreconciled == []


def test_raw_rows_carry_their_batch_and_extraction_time(embedded, pipeline):
    missing = scalar(embedded.warehouse,
                     "select count(*) from raw_crm.orders where _batch_id is null or _extracted_at is null")
    assert missing == 0
    batch = query(embedded.warehouse,
                  "select batch_id, rows_published from ops.load_batches where object_name = 'orders'")
    assert len(batch) == 1
    assert scalar(embedded.warehouse, "select count(*) from raw_crm.orders where _batch_id = %s",
                  (batch[0][0],)) == batch[0][1]


def test_marts_are_built_and_non_empty(embedded, pipeline):
    counts = status.mart_counts(embedded.warehouse)
    for mart in ("mart_customer_ltv", "mart_customer_churn", "mart_funnel_conversion"):
        assert counts.get(mart, 0) > 0, mart


def test_every_model_and_every_built_column_is_documented(pipeline):
    """The transform's `dbt docs generate` catalog lists every column built; each must be described."""
    import json

    target = transform.project_dir() / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    undocumented = []
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] != "model":
            continue
        if not node["description"].strip():
            undocumented.append(node["name"])
        described = {name.lower() for name, column in node["columns"].items() if column["description"].strip()}
        built = catalog["nodes"].get(unique_id, {}).get("columns", {})
        undocumented += [f"{node['name']}.{column}" for column in built if column.lower() not in described]
    assert undocumented == []


def test_ltv_net_revenue_matches_the_source_computed_independently(embedded, pipeline):
    """Lifetime net revenue in USD per customer, computed from the CRM source with plain SQL."""
    expected = dict(query(embedded.source, """
        with rates as (
            select currency, rate_date, usd_per_unit from crm.fx_rates where not is_deleted
        ), lines as (
            select o.customer_id, o.ordered_at, o.currency,
                   sum(l.quantity * l.unit_price - l.discount_amount) as amount
            from crm.orders o join crm.order_lines l on l.order_id = o.order_id and not l.is_deleted
            where not o.is_deleted and o.status <> 'cancelled'
            group by 1, 2, 3
        ), refunds as (
            select o.customer_id, r.refunded_at, r.currency, r.amount
            from crm.refunds r join crm.orders o on o.order_id = r.order_id
            where not r.is_deleted and not o.is_deleted and o.status <> 'cancelled'
        ), usd as (
            select customer_id, amount * (select usd_per_unit from rates x where x.currency = lines.currency
                   and x.rate_date <= lines.ordered_at::date order by rate_date desc limit 1) as usd from lines
            union all
            select customer_id, -amount * (select usd_per_unit from rates x where x.currency = refunds.currency
                   and x.rate_date <= refunds.refunded_at::date order by rate_date desc limit 1) from refunds
        )
        select customer_id, round(sum(usd), 2) from usd group by 1
    """))
    actual = dict(query(embedded.warehouse,
                        "select customer_id, round(net_revenue_reporting, 2) from marts.mart_customer_ltv"))
    assert len(expected) > 20
    assert set(expected) <= set(actual)
    mismatched = {c: (expected[c], actual[c]) for c in expected if abs(expected[c] - actual[c]) > 0.05}
    assert mismatched == {}
    assert all(actual[c] == 0 for c in set(actual) - set(expected))


def test_rerunning_the_ingest_loads_nothing_twice(embedded, pipeline):
    before_ledger, before_raw = ledger_totals(embedded.warehouse), raw_counts(embedded.warehouse)
    airflow_runner.dags_test("crm_ingest", env=pipeline, echo=lambda *_: None)
    assert ledger_totals(embedded.warehouse) == before_ledger
    assert raw_counts(embedded.warehouse) == before_raw


def test_an_incremental_run_loads_exactly_the_changed_rows(embedded, pipeline):
    watermarks = dict(query(embedded.warehouse, "select object_name, watermark from ops.watermarks"))
    simulator.advance(embedded.source, days=2, quiet=True)
    changed = {
        name: scalar(embedded.source, f"select count(*) from crm.{name} where updated_at > %s", (watermarks[name],))
        for name in objects.all_objects()
    }
    before = raw_counts(embedded.warehouse)
    airflow_runner.dags_test("crm_ingest", env=pipeline, echo=lambda *_: None)
    after = raw_counts(embedded.warehouse)
    assert sum(changed.values()) > 0
    assert {name: after[name] - before[name] for name in after} == changed


def test_rebuilding_the_marts_as_of_the_first_run_reproduces_it(embedded, pipeline):
    """After more days were simulated and loaded, a rebuild as of the first run's date gives its numbers."""
    first_as_of = scalar(embedded.warehouse, "select max(as_of_date) from marts.mart_customer_ltv")
    assert scalar(embedded.warehouse, "select count(*) from raw_crm.orders where ordered_at::date > %s",
                  (first_as_of,)) > 0, "the incremental run must have brought orders after the first as-of date"
    transform.build_all(as_of_date=first_as_of.isoformat())
    assert mart_digests(embedded.warehouse) == FIRST_RUN_MARTS


def test_a_bad_batch_is_held_and_raw_is_unchanged(embedded, pipeline):
    customer_id = scalar(embedded.source, "select min(customer_id) from crm.customers")
    query(embedded.source, "update crm.customers set email = 'not-an-email', "
                           "updated_at = (select max(updated_at) from crm.customers) + interval '1 second' "
                           "where customer_id = %s", (customer_id,))
    before = raw_counts(embedded.warehouse)
    with pytest.raises(BatchHeld) as held:
        extract_load.load_object("customers", "test-bad-batch")
    message = str(held.value)
    assert "customers" in message and "email" in message and str(customer_id) in message
    assert raw_counts(embedded.warehouse) == before
    status_row = query(embedded.warehouse, "select status, rows_published from ops.load_batches "
                                           "where run_id = 'test-bad-batch'")
    assert status_row == [("held", 0)]

    # After the source is fixed, the next run re-extracts the same range and publishes it.
    query(embedded.source, "update crm.customers set email = 'fixed@example.com', "
                           "updated_at = (select max(updated_at) from crm.customers) + interval '1 second' "
                           "where customer_id = %s", (customer_id,))
    result = extract_load.load_object("customers", "test-after-fix")
    assert result.status == "published"
    assert scalar(embedded.warehouse, "select email from raw_crm.customers where customer_id = %s "
                                      "order by _batch_id desc limit 1", (customer_id,)) == "fixed@example.com"
