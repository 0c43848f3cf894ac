"""The whole pipeline at a small scale, through real Airflow DAG runs, dbt and GX, on the embedded server.

Tests in this module build on each other in order: first load, rerun, incremental load, a quarantined
row, a held batch with its alert, a failing marts audit, a failing dbt model, a publish and a rollback.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import secrets
import threading
import time
from datetime import timedelta

import pytest

from crm_warehouse import (
    airflow_runner,
    cli,
    extract_load,
    gate_rules,
    gx_docs,
    marts_audit,
    marts_publish,
    objects,
    settings,
    simulator,
    status,
    transform,
)
from crm_warehouse.errors import WarehouseError
from tests import browser
from tests.conftest import free_port, query, scalar

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
    """Each mart's content, order-independent: md5 of its sorted rows, without the cutoff of the run that
    wrote them (incremental marts: _batch_cutoff_xid)."""
    row = "(to_jsonb(t) - '_batch_cutoff_xid')::text"
    return {
        mart: scalar(dsn, f"select md5(string_agg({row}, '|' order by {row})) from marts.{mart} t")
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


def test_the_demo_summary_tells_how_to_query_the_marts_as_the_analyst(embedded, pipeline, capsys):
    assert cli.main(["init"]) == 0  # as `make demo` does: the roles' logins, passwords under .data/secrets
    status.print_demo_summary(embedded, 1.0)
    command = next(line for line in capsys.readouterr().out.splitlines() if "psql" in line)
    password_file = command.split("$(cat ")[1].split(")")[0]
    user = command.split(" -U ")[1].split()[0]
    assert user == "crm_analyst"
    server = embedded.warehouse.split("@", 1)[1]
    password = open(password_file).read().strip()
    rows = query(f"postgresql://crm_analyst:{password}@{server}", "select count(*) from marts.mart_customer_ltv")
    assert rows[0][0] > 0


def test_the_airflow_ui_asks_for_a_login_and_shows_both_dags_with_a_successful_run(embedded, pipeline):
    """Headless Chromium against the real api-server: the login form, then both DAGs under the UI's own
    'last run: success' filter, the Browse menu's link to the dbt docs (plugins/crm_warehouse_ui.py) and the
    dbt docs Airflow serves itself (Cosmos' view), and crm_transform's task groups of dbt models."""
    airflow_runner.ensure_admin_login(echo=lambda line: None)
    password = json.loads(airflow_runner.passwords_file().read_text())["admin"]
    env = {**pipeline, "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16)}
    shots = browser.screenshots_dir()
    with browser.api_server(env, shots / "api-server.log") as base, browser.chromium() as driver:
        driver.get(f"{base}/dags?last_dag_run_state=success")
        browser.wait_for(driver, lambda d: d.find_element("name", "password"), what="the login form")
        assert "/auth/login" in driver.current_url
        driver.find_element("name", "username").send_keys("admin")
        driver.find_element("name", "password").send_keys(password)
        driver.find_element("css selector", "button[type=submit]").click()
        page = browser.wait_for(driver, lambda d: _text_with(d, "crm_ingest", "crm_transform"),
                                what="both DAGs under 'last run: success'")
        assert "last_dag_run_state=success" in driver.current_url and "2 Dags" in page
        driver.save_screenshot(str(shots / "airflow-dags.png"))
        driver.get(f"{base}/dags?last_dag_run_state=failed")  # the same filter does tell runs apart
        browser.wait_for(driver, lambda d: _text_with(d, "No Dags found"), what="no DAG under 'last run: failed'")

        next(b for b in driver.find_elements("css selector", "button") if b.text.strip() == "Browse").click()
        link = browser.wait_for(driver, lambda d: [a for a in d.find_elements("css selector", "[role=menu] a")
                                                   if a.text == "dbt docs"], what="the Browse menu")[0]
        assert link.get_attribute("href").rstrip("/") == settings.dbt_docs_url().rstrip("/")
        in_airflow = [a for a in driver.find_elements("css selector", "[role=menu] a")
                      if a.text == "dbt docs (in Airflow)"][0].get_attribute("href")

        driver.get(f"{in_airflow}#!/model/model.crm_warehouse.mart_customer_ltv")  # Cosmos' view, the api-server's
        browser.wait_for(driver, lambda d: _text_with(d, "mart_customer_ltv", "Depends On"),
                         what="the dbt docs Airflow serves")
        driver.save_screenshot(str(shots / "airflow-dbt-docs.png"))

        driver.get(f"{base}/dags/crm_transform")
        browser.wait_for(driver, lambda d: _text_with(d, "dbt_core", "dbt_marts", "score_customers"),
                         what="the crm_transform tasks")
        driver.find_element("css selector", "button[aria-label='Expand all task groups']").click()
        browser.wait_for(driver, lambda d: _text_with(d, "dbt_producer_watcher", "int_accounts__historized"),
                         what="a task per dbt model in the grid")
        driver.save_screenshot(str(shots / "airflow-crm-transform.png"))


def test_the_dbt_docs_show_the_lineage_of_mart_customer_ltv_from_its_sources(pipeline):
    """The site the transform's `dbt docs generate` wrote, served by `dbt docs serve`, in Chromium: the lineage
    graph of +mart_customer_ltv+ holds every source the manifest says it is built from."""
    docs = transform.docs_target()
    manifest = json.loads((docs / "manifest.json").read_text())
    model = "model.crm_warehouse.mart_customer_ltv"
    sources = {node for node in _reachable(manifest["parent_map"], [model]) if node.startswith("source.")}
    assert "source.crm_warehouse.crm.orders" in sources

    port = free_port()
    command = [transform.dbt_executable(), "docs", "serve", "--port", str(port), "--no-browser",
               "--target-path", str(docs), "--project-dir", str(transform.project_dir()),
               "--profiles-dir", str(transform.project_dir())]
    env = {**os.environ, **transform.dbt_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    shots = browser.screenshots_dir()
    with browser.background(command, env, shots / "dbt-docs.log", f"http://127.0.0.1:{port}/"), \
            browser.chromium() as driver:
        driver.get(f"http://127.0.0.1:{port}/#!/model/{model}?g_v=1&g_i=%2Bmart_customer_ltv%2B")
        graph = browser.wait_for(driver, lambda d: d.execute_script(GRAPH_NODES), what="the lineage graph")
        assert model in graph and sources <= set(graph), sources - set(graph)
        assert "model.crm_warehouse.mart_funnel_conversion" not in graph  # not a relative of the LTV mart
        driver.save_screenshot(str(shots / "dbt-docs-lineage.png"))


# the unique ids of the nodes the dbt docs' lineage graph shows (its angular service holds the elements)
GRAPH_NODES = """
    var elements = angular.element(document.body).injector().get('graph').graph.elements || [];
    return elements.filter(function (e) { return e.data && e.data.unique_id; })
                   .map(function (e) { return e.data.unique_id; });
"""


def _text_with(driver, *words: str) -> str | None:
    text = driver.find_element("tag name", "body").text
    return text if all(word in text for word in words) else None


def test_every_model_and_every_built_column_is_documented(pipeline):
    """The transform's `dbt docs generate` catalog lists every column built; each must be described."""
    manifest, catalog = _docs_artifacts()
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


def test_descriptions_are_comments_in_the_warehouse(pipeline):
    """persist_docs: every model's description and its columns' are postgres comments, for any SQL client
    (macros/persist_docs.sql writes them in one statement a model). Read from the catalog `dbt docs
    generate` took from the warehouse after the run."""
    manifest, catalog = _docs_artifacts()
    differing = []
    for unique_id, node in manifest["nodes"].items():
        built = catalog["nodes"].get(unique_id)
        if node["resource_type"] != "model" or built is None:
            continue
        if built["metadata"]["comment"] != node["description"]:
            differing.append(node["name"])
        columns = {name.lower(): column for name, column in built["columns"].items()}
        differing += [f"{node['name']}.{name}" for name, column in node["columns"].items()
                      if name.lower() in columns and columns[name.lower()]["comment"] != column["description"]]
    assert differing == []


def test_not_null_tests_of_tables_are_constraints_and_hold(embedded, pipeline):
    """The pipeline's builds skip the not_null tests of tables (postgres enforces them as NOT NULL); every such
    column is NOT NULL in the warehouse, and the tests themselves, run here, pass on its rows."""
    declared = {(parent["schema"], parent["alias"], test["column_name"]) for test, parent in _table_tests("not_null")}
    assert len(declared) > 250
    nullable = {row for row in query(embedded.warehouse, """
        select n.nspname, c.relname, a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace where not a.attnotnull and a.attnum > 0""")}
    assert declared & nullable == set()
    transform.run_dbt("test", "--select", "test_name:not_null")
    results = json.loads((transform.project_dir() / "target" / "run_results.json").read_text())["results"]
    statuses = [r["status"] for r in results if r["unique_id"].startswith("test.")]
    assert len(statuses) > 300 and set(statuses) == {"pass"}


def test_the_tests_the_models_enforce_are_unique_indexes_and_pass_as_dbt_tests(embedded, pipeline):
    """The pipeline's builds skip the unique and unique_combination_of_columns tests of tables (unique indexes) and
    their row-level tests (checked by the model's post-hook, macro assert_row_tests); every such key has a unique
    index on exactly its columns in the warehouse (partial where the test has a where config, treating nulls as
    equal where a combination's columns may be null), and the skipped tests themselves, run here with dbt on the
    published data, pass."""
    def keys(test_name: str, columns, nulls_equal: bool) -> set[tuple]:
        return {(parent["schema"].replace(marts_publish.SHADOW, marts_publish.LIVE), parent["alias"],
                 tuple(columns(test)), bool(test["config"].get("where")), nulls_equal)
                for test, parent in _table_tests(test_name)}

    unique = keys("unique", lambda test: [test["column_name"]], nulls_equal=False)
    combinations = keys("unique_combination_of_columns",
                        lambda test: test["test_metadata"]["kwargs"]["combination_of_columns"], nulls_equal=True)
    assert len(unique) > 40 and len(combinations) > 15 and any(key[3] for key in combinations)
    indexed = set()
    for schema, table, columns, partial, nulls_equal in query(embedded.warehouse, """
            select n.nspname, c.relname, array(select a.attname::text from unnest(i.indkey::int2[]) with ordinality
                   as k (attnum, position) join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                   order by k.position), i.indpred is not null,
                   i.indnullsnotdistinct or not exists (select from pg_attribute a where a.attrelid = i.indrelid
                       and a.attnum = any (i.indkey::int2[]) and not a.attnotnull)
            from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
            where i.indisunique and i.indexprs is null"""):
        # an index that refuses duplicate nulls stands for a combination test too
        indexed |= {(schema, table, tuple(columns), partial, equal) for equal in {False, nulls_equal}}
    assert (unique | combinations) - indexed == set()
    enforced = [s for s in transform.CONSTRAINED_TESTS if not s.startswith("test_name:not_null")]
    transform.run_dbt("test", "--select", *enforced)
    results = json.loads((transform.project_dir() / "target" / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("test.")}
    assert len(statuses) > 200 and set(statuses.values()) == {"pass"}


def test_the_staging_tests_the_load_gate_enforces_are_its_reference_rules_and_pass_as_dbt_tests(embedded, pipeline):
    """The pipeline's builds leave out the staging relationships tests tagged transform.GATE_ENFORCED_TAG. Each is
    a reference rule of the load gate (meta.references of expectations/crm_<object>.json) between two objects,
    every such rule has one, the self-reference is not tagged (the gate also resolves it against rows of the
    batch that may be quarantined), and run here with dbt on the pipeline's data the tagged tests pass."""
    manifest, _ = _docs_artifacts()
    tagged, untagged = set(), set()
    for node in manifest["nodes"].values():
        model = manifest["nodes"].get(node.get("attached_node") or "", {}).get("name", "")
        if (node.get("test_metadata") or {}).get("name") != "relationships" or not model.startswith("stg_crm__"):
            continue
        arguments = node["test_metadata"]["kwargs"]
        parent = re.fullmatch(r"ref\('stg_crm__(\w+)'\)", arguments["to"]).group(1)
        reference = (model.removeprefix("stg_crm__"), node["column_name"], parent, arguments["field"])
        (tagged if transform.GATE_ENFORCED_TAG in node["tags"] else untagged).add(reference)
    rules = {(name, rule.column, *rule.parent) for name in objects.all_objects()
             for rule in gate_rules.load(objects.get(name).suite_path).row_rules if rule.parent}
    assert tagged == {rule for rule in rules if rule[0] != rule[2]} and len(tagged) == 37
    assert untagged == {("subscriptions", "previous_subscription_id", "subscriptions", "subscription_id")}
    transform.run_dbt("test", "--select", f"tag:{transform.GATE_ENFORCED_TAG}")
    results = json.loads((transform.project_dir() / "target" / "run_results.json").read_text())["results"]
    statuses = [r["status"] for r in results if r["unique_id"].startswith("test.")]  # not the on-run-start hook
    assert len(statuses) == 37 and set(statuses) == {"pass"}


def _docs_artifacts() -> tuple[dict, dict]:
    """The manifest and catalog of the transform's last `dbt docs generate`."""
    target = transform.docs_target()
    return json.loads((target / "manifest.json").read_text()), json.loads((target / "catalog.json").read_text())


def _table_tests(test_name: str) -> list[tuple[dict, dict]]:
    """The generic tests of this name on table and incremental models, with their model (the docs manifest)."""
    manifest = json.loads((transform.docs_target() / "manifest.json").read_text())
    found = []
    for node in manifest["nodes"].values():
        parent = manifest["nodes"].get(node.get("attached_node") or "", {})
        if (node.get("test_metadata") or {}).get("name") == test_name and \
                parent.get("config", {}).get("materialized") in ("table", "incremental"):
            found.append((node, parent))
    return found


def test_dbt_unit_tests_pass(pipeline):
    """The pipeline's builds skip the unit tests (they prove logic, not data); they run here, in CI."""
    transform.run_dbt("test", "--select", "test_type:unit")
    results = json.loads((transform.project_dir() / "target" / "run_results.json").read_text())["results"]
    unit_tests = {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert len(unit_tests) >= 20 and set(unit_tests.values()) == {"pass"}


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
    asset_events = scalar(embedded.airflow_metadata, "select count(*) from asset_event")
    progress = []  # what `crmwh run`'s progress bar is fed
    airflow_runner.dags_test("crm_ingest", env=pipeline, echo=lambda *_: None,
                             on_task=lambda task, finished: progress.append((task, finished)))
    finished = scalar(embedded.airflow_metadata,
                      "select count(*) filter (where state in ('success', 'skipped')) from task_instance "
                      "where dag_id = 'crm_ingest' group by run_id order by max(end_date) desc limit 1")
    assert airflow_runner.dag_task_count(pipeline, "crm_ingest") == finished  # every task of the run ended
    assert progress[0][0] == "plan_run" and progress[-1][1] == finished
    assert {f"load_{name}" for name in objects.all_objects()} <= {task for task, _ in progress}
    assert ledger_totals(embedded.warehouse) == before_ledger
    assert raw_counts(embedded.warehouse) == before_raw
    # nothing new: no event on the raw asset, so crm_transform is not triggered for nothing
    assert scalar(embedded.airflow_metadata, "select count(*) from asset_event") == asset_events


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


def test_dbt_threads_keep_their_connection_from_node_to_node(embedded, pipeline):
    """dbt closes a thread's connection after every node; the project's builds keep it (dbt_connections): a build
    of many nodes opens one connection per thread, and dbt's own release is back afterwards."""
    from dbt.adapters.base.connections import BaseConnectionManager

    dbt_release = BaseConnectionManager.release
    events: list[str] = []
    transform.run_dbt("build", "--select", "stg_crm__products+", "--exclude", transform.MARTS,
                      "--exclude-resource-type", "unit_test", "--threads", "2",
                      "--vars", json.dumps(transform.build_vars()), "--no-write-json",
                      on_event=lambda event: events.append(event.info.name))
    nodes = events.count("NodeFinished")
    assert nodes > 10
    # the two threads' connections and dbt's master connection, each closed once when the invocation ends
    assert events.count("ConnectionClosed") <= 3
    assert BaseConnectionManager.release is dbt_release


def test_a_bad_row_is_quarantined_and_the_rest_of_its_batch_published(embedded, pipeline):
    customer_id, other_id = [r[0] for r in query(embedded.source,
                                                 "select customer_id from crm.customers order by 1 limit 2")]
    query(embedded.source, "update crm.customers set email = case when customer_id = %s then 'not-an-email' "
                           "else email end, updated_at = now() - interval '1 second' "
                           "where customer_id in (%s, %s)", (customer_id, customer_id, other_id))
    result = extract_load.load_object("customers", "test-bad-row")
    assert (result.status, result.rows_published, result.rows_quarantined) == ("published", 1, 1)
    assert query(embedded.warehouse, "select customer_id, _failed_rules from quarantine.customers "
                                     "where _batch_id = %s", (result.batch_id,)) == [
        (customer_id, ["match_regex(email)"])]
    assert scalar(embedded.warehouse, "select customer_id from raw_crm.customers where _batch_id = %s",
                  (result.batch_id,)) == other_id


class AlertReceiver(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        AlertReceiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_held_batch_fails_its_task_and_raises_an_alert_through_the_connection(embedded, pipeline):
    server = http.server.HTTPServer(("127.0.0.1", 0), AlertReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**pipeline, "AIRFLOW_CONN_CRMWH_ALERTS": f"http://127.0.0.1:{server.server_port}/hooks/crmwh"}
    query(embedded.source, "update crm.refunds set currency = 'XXX', updated_at = now() - interval '1 second'")
    started = scalar(embedded.warehouse, "select clock_timestamp()")
    try:
        with pytest.raises(WarehouseError, match="crm_ingest"):
            airflow_runner.dags_test("crm_ingest", env=env, echo=lambda *_: None)
    finally:
        server.shutdown()
    held = query(embedded.warehouse, "select batch_id, held_rule from ops.load_batches where object_name = 'refunds' "
                                     "and status = 'held'")
    assert [rule for _, rule in held] == ["max_failing_share"]
    alerts = query(embedded.warehouse, "select task_id, message, delivered_to from ops.alerts "
                                       "where dag_id = 'crm_ingest' and raised_at > %s", (started,))
    assert [(task, to) for task, _, to in alerts] == [
        ("load_refunds", f"http://127.0.0.1:{server.server_port}/hooks/crmwh")]
    assert f"Batch {held[0][0]} of refunds held" in alerts[0][1]
    assert [a["task_id"] for a in AlertReceiver.received] == ["load_refunds"]
    # the object is resolved by replaying it once the source is fixed
    query(embedded.source, "update crm.refunds r set currency = o.currency, updated_at = now() - interval '1 second' "
                           "from crm.orders o where o.order_id = r.order_id and r.currency = 'XXX'")
    assert cli.main(["replay", str(held[0][0]), "--reason", "currency fixed in the CRM"]) == 0


def test_a_failing_mart_audit_leaves_marts_as_they_were(embedded, pipeline, tmp_path, monkeypatch):
    before = mart_digests(embedded.warehouse)
    versions = scalar(embedded.warehouse, "select count(*) from ops.marts_versions where status = 'published'")
    for suite in marts_audit.suites_dir().glob("*.json"):
        (tmp_path / suite.name).write_text(suite.read_text())
    broken = json.loads((tmp_path / "mart_customer_ltv.json").read_text())
    broken["expectations"].append({"type": "expect_column_values_to_be_between",
                                   "kwargs": {"column": "order_count", "max_value": 0}, "meta": {"severity": "error"}})
    (tmp_path / "mart_customer_ltv.json").write_text(json.dumps(broken))
    monkeypatch.setattr(marts_audit, "suites_dir", lambda: tmp_path)
    with pytest.raises(marts_publish.MartsNotPublished, match="mart_customer_ltv.*order_count"):
        transform.build_marts()
    assert mart_digests(embedded.warehouse) == before
    results = gx_docs._file_context().validation_results_store.list_keys()  # the failed audit's pages are built
    assert results and all(gx_docs._page_path(key).exists() for key in results)
    assert scalar(embedded.warehouse, "select count(*) from ops.marts_versions where status = 'published'") == versions
    assert scalar(embedded.warehouse, "select status from ops.marts_versions order by version_id desc limit 1") == (
        "failed_audit")


def test_a_failing_model_or_test_fails_its_own_task_and_its_retry_builds_it_alone(embedded, pipeline, request):
    """crm_transform's dbt task groups (Cosmos watcher mode): the model whose build fails, or one of whose tests
    fails, is the failed task, with dbt's message; the models the build did not select are skipped; the marts are
    not published. The model's automatic retry builds it alone (`dbt build`, its tests included), which succeeds
    once the cause is gone; the next DAG run builds the rest and publishes."""
    wh, published = embedded.warehouse, "select count(*) from ops.marts_versions where status = 'published'"
    versions = scalar(wh, published)
    # an incremental core table the next build cannot insert into: a NOT NULL column dbt does not fill
    query(wh, "alter table core.fct_support_tickets add column sabotage int not null default 0")
    query(wh, "alter table core.fct_support_tickets alter column sabotage drop default")
    query(embedded.source, "update crm.support_tickets set updated_at = now() - interval '1 second' "
                           "where ticket_id = (select min(ticket_id) from crm.support_tickets)")
    # a value the load gate lets through and the staging model's row checks do not (accepted_values, checked by
    # the model's post-hook: macro assert_row_tests)
    activity, activity_type = query(
        embedded.source, "select activity_id, activity_type from crm.activities "
                         "order by activity_id limit 1")[0]
    query(embedded.source, "update crm.activities set activity_type = 'webinar', updated_at = now() - interval "
                           "'1 second' where activity_id = %s", (activity,))
    # a data test of its own that fails: a changed campaign touch whose customer the customer dimension has lost
    # (incremental, so a build that selects it does not bring the customer back; the tests of an incremental model
    # check the rows its run wrote)
    touch, touch_customer = query(
        wh, "select campaign_touch_id, customer_id from core.fct_campaign_touches where customer_id not in ("
            "select customer_id from core.fct_activities where activity_id = %s and customer_id is not null union all "
            "select customer_id from core.fct_support_tickets where ticket_id = (select min(ticket_id) from "
            "core.fct_support_tickets) and customer_id is not null) order by campaign_touch_id limit 1", (activity,))[0]
    query(embedded.source, "update crm.campaign_touches set updated_at = now() - interval '1 second' "
                           "where touch_id = %s", (touch,))
    query(wh, "create table public.lost_customer as select * from core.dim_customer where customer_id = %s",
          (touch_customer,))
    request.addfinalizer(lambda: _restore_lost_customer(wh))  # also when an assertion below fails
    query(wh, "delete from core.dim_customer where customer_id = %s", (touch_customer,))
    airflow_runner.dags_test("crm_ingest", env=pipeline, echo=lambda *_: None)
    failures: list[WarehouseError] = []
    retry_soon = {**pipeline, "CRMWH_TRANSFORM_RETRY_DELAY_SECONDS": "10"}  # `dags test` waits out the delay
    run = threading.Thread(target=_transform_expecting_failure, args=(retry_soon, failures))
    run.start()
    _wait_for_task_state(embedded.airflow_metadata, "dbt_core.fct_support_tickets_run", "up_for_retry")
    query(wh, "alter table core.fct_support_tickets drop column sabotage")  # while the retry waits its delay
    run.join(timeout=900)
    assert len(failures) == 1
    log = failures[0].args[0].rsplit("full log: ", 1)[1]
    log_text = open(log).read()
    assert 'null value in column "sabotage" of relation "fct_support_tickets"' in log_text
    assert ("model.crm_warehouse.fct_support_tickets failed in dbt_core.dbt_producer_watcher's dbt build: "
            "Database Error in model fct_support_tickets") in log_text
    assert "Retry attempt #1 – Running model 'model.crm_warehouse.fct_support_tickets'" in log_text
    assert re.search(r"model\.crm_warehouse\.stg_crm__activities failed in dbt_core\.dbt_producer_watcher's dbt "
                     r"build: Database Error in model stg_crm__activities", log_text)
    assert re.search(r'"staging"\."stg_crm__activities" failed 1 data test\(s\) on the rows it wrote: '
                     r"accepted_values_stg_crm__activities_activity_type\w* \(activity_type in \('call', 'email', "
                     r"'meeting', 'demo'\)\): 1 rows, e\.g\. \(" + str(activity) + ",", log_text)
    assert re.search(r"model\.crm_warehouse\.fct_campaign_touches failed in dbt_core\.dbt_producer_watcher's dbt "
                     r"build: relationships_fct_campaign_touches_customer_id\w*: Got 1 result", log_text)

    states = _last_run_states(embedded.airflow_metadata)
    assert states["dbt_core.dbt_producer_watcher"] == ("failed", 1)
    assert states["dbt_core.fct_support_tickets_run"] == ("success", 2)
    assert states["dbt_core.stg_crm__activities_run"] == ("failed", 2)  # its retry: the row is still in raw
    assert states["dbt_core.fct_campaign_touches_run"] == ("failed", 2)
    assert states["dbt_core.fct_activities_run"][0] == "upstream_failed"
    assert states["score_customers"][0] == states["dbt_marts.dbt_producer_watcher"][0] == "upstream_failed"
    # what the failed build selected: downstream of the objects changed since the last core build that succeeded,
    # or every model (null) when a build since then had another fingerprint (the earlier as-of rebuild)
    selected = query(wh, "select selected_objects from ops.core_builds order by build_id desc limit 1")[0][0]
    built = (_models_downstream_of({f"source.crm_warehouse.crm.{name}" for name in selected}) if selected
             else _core_models())
    assert "fct_support_tickets" in built
    # a relationships test fails the tasks of both its models when the build selected both (every model, above)
    failing = {"stg_crm__activities", "fct_campaign_touches"} | ({"dim_customer"} & built)
    for task_id, (state, _) in states.items():
        model = task_id.split(".")[1].removesuffix("_run") if task_id.startswith("dbt_core.") else None
        if model and task_id.endswith("_run") and model not in built:
            assert state == "skipped", task_id
        elif model in failing and task_id.endswith("_run"):
            assert state == "failed", task_id
        elif model and task_id.endswith("_run"):
            assert state in ("success", "upstream_failed"), task_id
    assert scalar(wh, published) == versions

    query(embedded.source, "update crm.activities set activity_type = %s, updated_at = now() - interval '1 second' "
                           "where activity_id = %s", (activity_type, activity))
    _restore_lost_customer(wh)
    airflow_runner.dags_test("crm_ingest", env=pipeline, echo=lambda *_: None)

    airflow_runner.dags_test("crm_transform", env=pipeline, echo=lambda *_: None)
    states = _last_run_states(embedded.airflow_metadata)
    assert states["dbt_core.fct_support_tickets_run"] == states["dbt_core.stg_crm__activities_run"] == ("success", 1)
    assert states["dbt_core.fct_campaign_touches_run"] == ("success", 1)
    assert scalar(wh, published) == versions + 1


def _restore_lost_customer(wh: str) -> None:
    if scalar(wh, "select to_regclass('public.lost_customer') is not null"):
        query(wh, "insert into core.dim_customer select * from public.lost_customer")
        query(wh, "drop table public.lost_customer")


def _transform_expecting_failure(env: dict, failures: list) -> None:
    try:
        airflow_runner.dags_test("crm_transform", env=env, echo=lambda *_: None)
    except WarehouseError as failure:
        failures.append(failure)


def _wait_for_task_state(metadata_dsn: str, task_id: str, state: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(metadata_dsn, "select 1 from task_instance ti join dag_run r using (dag_id, run_id) "
                               "where ti.dag_id = 'crm_transform' and ti.task_id = %s and ti.state = %s "
                               "and r.state = 'running'", (task_id, state)):
            return
        time.sleep(0.5)
    raise AssertionError(f"{task_id} never reached {state}")


def _last_run_states(metadata_dsn: str) -> dict[str, tuple[str, int]]:
    return {task_id: (state, tries) for task_id, state, tries in query(
        metadata_dsn, "select task_id, state, try_number from task_instance where dag_id = 'crm_transform' "
                      "and run_id = (select run_id from dag_run where dag_id = 'crm_transform' "
                      "order by start_date desc limit 1)")}


def _models_downstream_of(sources: set[str]) -> set[str]:
    """Model names downstream of these dbt sources, from the manifest's child map."""
    from crm_warehouse import dbt_tasks

    children = json.loads(dbt_tasks.render_manifest().read_text())["child_map"]
    return {uid.split(".")[-1] for uid in _reachable(children, sources) if uid.startswith("model.")}


def _core_models() -> set[str]:
    from crm_warehouse import dbt_tasks

    nodes = json.loads(dbt_tasks.render_manifest().read_text())["nodes"]
    return {node["name"] for node in nodes.values() if node["resource_type"] == "model"
            and not node["path"].startswith("marts/") and "as_of" not in node["tags"]}


def _reachable(edges: dict[str, list[str]], start) -> set[str]:
    """Every node reachable from start along edges (a manifest's parent_map or child_map), start excluded."""
    seen, todo = set(), list(start)
    while todo:
        for node in edges.get(todo.pop(), []):
            if node not in seen:
                seen.add(node)
                todo.append(node)
    return seen


def test_publishing_keeps_grants_and_rollback_restores_the_previous_marts(embedded, pipeline):
    query(embedded.warehouse, "drop role if exists crmwh_test_analyst")
    query(embedded.warehouse, "create role crmwh_test_analyst")
    query(embedded.warehouse, "grant usage on schema marts to crmwh_test_analyst")
    query(embedded.warehouse, "grant select on marts.mart_customer_ltv to crmwh_test_analyst")
    live = mart_digests(embedded.warehouse)
    live_as_of = scalar(embedded.warehouse, "select max(as_of_date) from marts.mart_customer_ltv")
    earlier = (live_as_of - timedelta(days=1)).isoformat()
    transform.build_marts(as_of_date=earlier)
    assert scalar(embedded.warehouse, "select max(as_of_date) from marts.mart_customer_ltv").isoformat() == earlier
    assert scalar(embedded.warehouse, "select has_schema_privilege('crmwh_test_analyst', 'marts', 'usage') "
                                      "and has_table_privilege('crmwh_test_analyst', 'marts.mart_customer_ltv', "
                                      "'select')")
    assert cli.main(["rollback", "--reason", "test"]) == 0
    assert mart_digests(embedded.warehouse) == live
    assert scalar(embedded.warehouse, "select has_table_privilege('crmwh_test_analyst', 'marts.mart_customer_ltv', "
                                      "'select')")
    assert query(embedded.warehouse, "select action, actor is not null from ops.marts_versions "
                                     "order by version_id desc limit 1") == [("rollback", True)]
