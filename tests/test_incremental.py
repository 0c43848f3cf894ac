"""Incremental dbt: several `advance` steps built incrementally end identical to one build from scratch.

Runs on its own source and warehouse databases of the session's embedded server: an initial load and
full build, two simulated days each loaded and built incrementally (mart_pipeline_daily too, then the
incremental models' data tests), then the predictive scores and the marts. The result is kept, the
project is rebuilt with `--full-refresh` and the marts built again from the same scores, and every
relation of staging, intermediate, core and the marts must hold exactly the same rows. The days are built as
the pipeline builds them (transform.build_core: only what the changed objects reach). Also checks an
incremental run rewrote only the keys that changed, counted independently from raw_crm and the ledger.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from crm_warehouse import extract_load, objects, simulator, transform
from tests.conftest import fresh_databases, query, scalar

SCALE = 0.03
DBT_SCHEMAS = ("staging", "intermediate", "core")
SNAPSHOT = "incremental_result"
# differs by construction: the cutoff of the run that wrote the row
RUN_COLUMNS = {"_batch_cutoff_xid"}
# the models of the marts build that are incremental across as-of days (macros/as_of_incremental.sql)
AS_OF_MODELS = ("int_orders__revenue_as_of", "int_refunds__revenue_as_of", "int_customers__revenue_as_of",
                "int_customers__monthly_revenue_as_of", "int_customers__activity_periods_as_of",
                "int_deals__state_as_of", "int_accounts__mrr_movements_as_of")
AS_OF_DAILY = "mart_pipeline_daily tag:as_of"



def build_marts_into(schema: str, select: str = transform.MARTS, full_refresh: bool = False) -> None:
    transform.run_dbt("run", "--select", select, "--vars", json.dumps({"marts_schema": schema}),
                      *(["--full-refresh"] if full_refresh else []))


def relations(dsn: str, schemas: tuple[str, ...]) -> list[tuple[str, str]]:
    return [tuple(r) for r in query(dsn, """
        select table_schema, table_name from information_schema.tables
        where table_schema = any(%s) order by 1, 2""", (list(schemas),))]


def compared_columns(dsn: str, schema: str, table: str) -> str:
    names = [r[0] for r in query(dsn, """
        select column_name from information_schema.columns where table_schema = %s and table_name = %s
        order by ordinal_position""", (schema, table)) if r[0] not in RUN_COLUMNS]
    return ", ".join(f'"{n}"' for n in names)


def differing_rows(dsn: str, left: str, right: str, columns: str) -> int:
    return scalar(dsn, f"""
        select count(*) from (
            (select {columns} from {left} except all select {columns} from {right})
            union all
            (select {columns} from {right} except all select {columns} from {left})
        ) d""")


@pytest.fixture(scope="module")
def warehouses(embedded):
    source, wh = fresh_databases(embedded, "incr_crm", "incr_warehouse")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", wh)
        mp.setenv("CRM_SOURCE_DSN", source)
        # every load reconciles keys, so the simulator's hard deletes reach the models as tombstones
        mp.setenv("CRMWH_DELETE_RECONCILE_HOURS", "0")
        simulator.simulate(source, scale=SCALE, seed=5, quiet=True)
        extract_load.load_all("initial")
        transform.run_dbt("run", "--exclude", transform.MARTS)
        # the incremental mart and the as-of models (macros/as_of_incremental.sql), day by day
        build_marts_into("incremental_marts", AS_OF_DAILY)
        changed = {}
        for step in (1, 2):
            simulator.advance(source, days=1, quiet=True)
            if step == 1:
                # the simulator never changes a product: a new unit cost must reach every line and order of it
                query(source, """update crm.products set unit_cost_usd = unit_cost_usd + 1,
                                    updated_at = (select max(updated_at) from crm.orders)
                                  where product_id = (select min(product_id) from crm.products)""")
                # nor moves a line to another order: both orders' totals change
                query(source, """update crm.order_lines set order_id = (select max(order_id) from crm.orders),
                                    updated_at = (select max(updated_at) from crm.orders)
                                  where order_line_id = (select min(order_line_id) from crm.order_lines
                                                         where not is_deleted)""")
            extract_load.load_all(f"day-{step}")
            changed[step] = expected_changed_orders(wh, f"day-{step}")
            if step == 2:
                # as if the table had been built by a release before the model had this column
                query(wh, "alter table core.fct_support_tickets drop column resolution_hours")
                # ... and before its not_null tests became constraints
                query(wh, "alter table core.fct_orders alter column customer_id drop not null")
            tables_before = core_table_writes(wh)
            transform.build_core()  # as the pipeline builds: only what the changed objects reach (build_scope)
            changed[step]["written_tables"] = {t for t, w in core_table_writes(wh).items() if tables_before.get(t) != w}
            changed[step]["rewritten"] = rewritten_rows(wh)
            changed[step]["tickets_rewritten"] = rewritten_rows(wh, "core.fct_support_tickets")
            changed[step]["tickets"] = scalar(wh, "select count(*) from core.fct_support_tickets")
            if step == 1:
                build_marts_into("incremental_marts", AS_OF_DAILY)
        # the data tests of the incremental models, on the rows the incremental run wrote
        transform.run_dbt("test", "--select", "config.materialized:incremental", "--exclude", transform.MARTS)
        transform.score_customers()
        build_marts_into("incremental_marts")
        as_of = {model: (rewritten_rows(wh, f"intermediate.{model}"),
                                    scalar(wh, f"select count(*) from intermediate.{model}")) for model in AS_OF_MODELS}
        snapshot(wh)
        transform.run_dbt("run", "--full-refresh", "--exclude", transform.MARTS)
        build_marts_into("full_refresh_marts", full_refresh=True)
        yield type("Warehouses", (), {"source": source, "warehouse": wh, "changed": changed, "as_of": as_of})


def expected_changed_orders(wh: str, run_id: str) -> dict:
    """Orders with a version in the run's batches, straight from raw_crm and the ledger."""
    orders = scalar(wh, """
        select count(distinct o.order_id) from raw_crm.orders o
        join ops.load_batches b on b.batch_id = o._batch_id
        where b.run_id = %s and b.status = 'published'""", (run_id,))
    return {"orders": orders, "total": scalar(wh, "select count(distinct order_id) from raw_crm.orders")}


def core_table_writes(wh: str) -> dict[str, tuple]:
    """Each core table's file node and, for an incremental model, the latest cutoff it wrote: a table build
    writes a new relation (a new file node), an incremental run writes rows with a new cutoff."""
    tables = dict(query(wh, """select c.relname, c.relfilenode from pg_class c
                               join pg_namespace n on n.oid = c.relnamespace
                               where n.nspname = 'core' and c.relkind = 'r'"""))
    incremental = {r[0] for r in query(wh, """select table_name from information_schema.columns
                                              where table_schema = 'core' and column_name = '_batch_cutoff_xid'""")}
    return {table: (node, scalar(wh, f"select max(_batch_cutoff_xid) from core.{table}")
                    if table in incremental else None) for table, node in tables.items()}


def rewritten_rows(wh: str, relation: str = "staging.stg_crm__orders") -> int:
    return scalar(wh, f"""select count(*) from {relation}
                          where _batch_cutoff_xid = (select max(_batch_cutoff_xid) from {relation})""")


def snapshot(wh: str) -> None:
    query(wh, f"drop schema if exists {SNAPSHOT} cascade")
    query(wh, f"create schema {SNAPSHOT}")
    for schema, table in relations(wh, DBT_SCHEMAS):
        query(wh, f'create table {SNAPSHOT}."{schema}__{table}" as select * from "{schema}"."{table}"')


def test_an_incremental_run_rewrites_only_the_changed_keys(warehouses):
    for step, counts in warehouses.changed.items():
        assert counts["orders"] > 0, f"day {step} changed no order: the test would prove nothing"
        assert counts["rewritten"] == counts["orders"], f"day {step}"
        assert counts["rewritten"] < counts["total"] / 10


def test_a_pipeline_core_build_skips_what_no_changed_object_reaches(warehouses):
    """Day 1 is the first recorded core build (every model: the table models are rebuilt, the incremental ones
    write what changed); day 2 changed no product, pipeline stage or rep, so their dimensions were left as they
    were while the models of changed objects were rebuilt or written to. The tables still equal a full refresh
    (test_core_tables_equal_a_full_refresh)."""
    day_1, day_2 = warehouses.changed[1]["written_tables"], warehouses.changed[2]["written_tables"]
    assert {"dim_product", "dim_deal_stage", "dim_sales_rep"} <= day_1, day_1
    assert not day_2 & {"dim_product", "dim_deal_stage", "dim_sales_rep", "dim_date"}
    assert {"dim_customer", "fct_deals"} <= day_2, day_2


def test_a_table_lacking_a_documented_column_is_rewritten_whole_once(warehouses):
    """Day 2 ran on a fct_support_tickets without resolution_hours (as after an upgrade that added it):
    every ticket was rewritten, so none keeps it null (the values are checked against a full refresh below)."""
    day1, day2 = warehouses.changed[1], warehouses.changed[2]
    assert 0 < day1["tickets_rewritten"] < day1["tickets"] / 10
    assert day2["tickets_rewritten"] == day2["tickets"]


def test_a_changed_product_and_a_moved_line_were_loaded_on_day_1(warehouses):
    """So the equality with a full refresh below covers the cost of goods of the product's lines and
    orders, and the totals of the order a line left."""
    wh = warehouses.warehouse
    assert scalar(wh, """select coalesce(sum(rows_published), 0) from ops.load_batches
                         where run_id = 'day-1' and object_name = 'products'""") == 1
    assert scalar(wh, """select count(distinct order_id) from raw_crm.order_lines
                         where order_line_id = (select min(order_line_id) from raw_crm.order_lines)""") == 2


def test_hard_deletes_reached_the_incremental_models(warehouses):
    wh = warehouses.warehouse
    tombstoned = {r[0] for r in query(wh, "select activity_id from raw_crm.activities where _deleted_at is not null")}
    assert tombstoned, "the simulator hard-deleted no activity: the test would prove nothing"
    deleted = {r[0] for r in query(wh, "select activity_id from core.fct_activities where is_deleted and "
                                       "activity_id = any(%s)", (list(tombstoned),))}
    assert deleted == tombstoned


def test_the_daily_pipeline_mart_rewrote_only_its_latest_days(warehouses):
    days, rewritten, latest = query(warehouses.warehouse, """
        select count(distinct date_day),
               count(distinct date_day) filter (where _batch_cutoff_xid = (
                   select max(_batch_cutoff_xid) from incremental_marts.mart_pipeline_daily)),
               max(date_day) = max(as_of_date) and min(as_of_date) = max(as_of_date)
        from incremental_marts.mart_pipeline_daily""")[0]
    assert days > 300 and 1 <= rewritten < days / 4
    assert latest  # the new day is there and every row carries the run's as-of date


def test_a_table_built_before_its_not_null_constraints_gets_them_on_its_next_run(warehouses):
    assert scalar(warehouses.warehouse, """select attnotnull from pg_attribute
                                           where attrelid = 'core.fct_orders'::regclass and attname = 'customer_id'""")


def test_the_incremental_models_are_incremental(warehouses):
    materialized = {r[0] for r in query(warehouses.warehouse, """
        select table_schema || '.' || table_name from information_schema.columns
        where column_name = '_batch_cutoff_xid'""") if not r[0].startswith(SNAPSHOT)}
    assert {"staging.stg_crm__orders", "staging.stg_crm__web_sessions", "intermediate.int_deals__historized",
            "intermediate.int_accounts__historized", "core.fct_orders", "core.fct_order_lines"} <= materialized


def test_the_as_of_models_rewrote_only_the_keys_a_day_changed(warehouses):
    """Built after the initial load and each day, so the last build rewrote one day's keys: some, not all. The
    rows still equal a build from scratch (test_core_tables_equal_a_full_refresh compares the intermediate
    schema)."""
    for model, (rewritten, total) in warehouses.as_of.items():
        assert 0 < rewritten < total / 2, model


def test_core_tables_equal_a_full_refresh(warehouses):
    wh = warehouses.warehouse
    compared = relations(wh, DBT_SCHEMAS)
    assert len(compared) > 40
    differences = {}
    for schema, table in compared:
        columns = compared_columns(wh, schema, table)
        differing = differing_rows(wh, f'{SNAPSHOT}."{schema}__{table}"', f'"{schema}"."{table}"', columns)
        if differing:
            differences[f"{schema}.{table}"] = differing
    assert differences == {}
    assert scalar(wh, "select count(*) from core.fct_order_lines") > 1000


def test_marts_equal_a_full_refresh(warehouses):
    wh = warehouses.warehouse
    marts = [t for _, t in relations(wh, ("incremental_marts",))]
    assert len(marts) >= 15
    differences = {}
    for table in marts:
        columns = compared_columns(wh, "incremental_marts", table)
        differing = differing_rows(wh, f'incremental_marts."{table}"', f'full_refresh_marts."{table}"', columns)
        if differing:
            differences[table] = differing
    assert differences == {}


def test_raw_tables_keep_statistics_and_find_a_batch_through_its_brin_index(warehouses):
    """Every publish summarizes the new pages of the _batch_id BRIN index and analyzes a table that was never
    analyzed or grew by a tenth, so the incremental models find a run's rows without scanning all of raw."""
    wh = warehouses.warehouse
    assert query(wh, """select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                        where n.nspname = 'raw_crm' and c.relkind = 'r' and c.reltuples < 0""") == []
    indexes = [r[0] for r in query(wh, "select indexname from pg_indexes where schemaname = 'raw_crm' "
                                       "and indexname like '%\\_batch\\_brin'")]
    assert len(indexes) == len(objects.all_objects())
    # the first load publishes without them and builds them afterwards (warehouse.publishing_into_raw)
    key_indexes = {r[0] for r in query(wh, "select indexdef from pg_indexes where schemaname = 'raw_crm' "
                                           "and indexname like '%\\_key\\_idx'")}
    assert {f"CREATE INDEX {name}_key_idx ON raw_crm.{name} USING btree ({obj.key}, _batch_id)"
            for name, obj in objects.all_objects().items()} == key_indexes
    assert {i: scalar(wh, "select brin_summarize_new_values(%s::regclass)", (f"raw_crm.{i}",))
            for i in indexes} == dict.fromkeys(indexes, 0)


def test_as_of_models_built_forward_across_many_days_equal_a_full_build(warehouses):
    """Built as of ten days before the latest loaded day (an earlier date: every key rewritten), then for the
    latest day: one window of ten days in which orders were placed, type-2 versions started and ended, stages
    were entered and churn dates passed with no new batch. The rows equal a --full-refresh build for that day.
    Runs last: it leaves the as-of models as a full build of the latest day, as the tests above found them."""
    wh = warehouses.warehouse
    latest = scalar(wh, "select latest_loaded_date from intermediate.int_loaded_dates__summarized")
    earlier = (latest - timedelta(days=10)).isoformat()
    transform.run_dbt("run", "--select", "tag:as_of", "--vars", json.dumps({"as_of_date": earlier}))
    transform.run_dbt("run", "--select", "tag:as_of")
    rewritten = {model: rewritten_rows(wh, f"intermediate.{model}") for model in AS_OF_MODELS}
    query(wh, "drop schema if exists as_of_forward cascade")
    query(wh, "create schema as_of_forward")
    for model in AS_OF_MODELS:
        query(wh, f"create table as_of_forward.{model} as select * from intermediate.{model}")
    transform.run_dbt("run", "--select", "tag:as_of", "--full-refresh")
    differences = {}
    for model in AS_OF_MODELS:
        assert 0 < rewritten[model] < scalar(wh, f"select count(*) from intermediate.{model}"), model
        columns = compared_columns(wh, "intermediate", model)
        differing = differing_rows(wh, f"as_of_forward.{model}", f"intermediate.{model}", columns)
        if differing:
            differences[model] = differing
    assert differences == {}
