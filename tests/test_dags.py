"""Every DAG file imports cleanly and wires the tasks the design promises."""

from __future__ import annotations

import pytest

from crm_warehouse import objects, settings


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags"))


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"crm_ingest", "crm_transform"}


def test_no_dag_file_is_named_like_a_dbt_file():
    assert not list((settings.PROJECT_ROOT / "dags").glob("dbt_*.py"))


def test_ingest_has_one_task_per_crm_object_after_its_parents(dagbag):
    dag = dagbag.dags["crm_ingest"]
    load_tasks = {t.task_id for t in dag.tasks if t.task_id.startswith("load_")}
    assert load_tasks == {f"load_{name}" for name in objects.all_objects()}
    orders = dag.get_task("load_orders")
    assert "load_customers" in orders.upstream_task_ids
    order_lines = dag.get_task("load_order_lines")
    assert {"load_orders", "load_products"} <= order_lines.upstream_task_ids
    assert dag.get_task("load_orders").retries == 2
    assert dag.get_task("load_orders").retry_exponential_backoff


def test_transform_is_scheduled_on_the_raw_asset_the_ingest_produces(dagbag):
    ingest, transform = dagbag.dags["crm_ingest"], dagbag.dags["crm_transform"]
    produced = {outlet.name for task in ingest.tasks for outlet in task.outlets}
    assert "crm_raw" in produced
    assert "crm_raw" in str(transform.timetable.asset_condition)


def test_every_dag_is_documented_owned_and_tagged(dagbag):
    for dag in dagbag.dags.values():
        assert dag.doc_md and len(dag.doc_md) > 100, dag.dag_id
        assert dag.tags, dag.dag_id
        assert all(task.owner not in ("", "airflow") for task in dag.tasks), dag.dag_id


def test_transform_writes_audits_then_publishes_the_marts(dagbag):
    dag = dagbag.dags["crm_transform"]
    assert dag.get_task("audit_marts").upstream_task_ids == {"dbt_build_marts_shadow"}
    assert dag.get_task("publish_marts").upstream_task_ids == {"audit_marts"}
    assert {outlet.name for outlet in dag.get_task("publish_marts").outlets} == {"crm_marts"}
    assert not [t for t in dag.tasks if t.task_id != "publish_marts" and t.outlets]


def test_every_task_records_an_alert_when_it_fails(dagbag):
    from crm_warehouse import alerts

    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert alerts.on_failure in (task.on_failure_callback or []), task.task_id


def test_data_docs_are_built_after_every_load_without_hiding_a_failed_one(dagbag):
    dag = dagbag.dags["crm_ingest"]
    docs = dag.get_task("build_data_docs")
    assert docs.trigger_rule == "all_done"
    assert {f"load_{name}" for name in objects.all_objects()} <= docs.upstream_task_ids
    assert docs.downstream_task_ids == {"publish_raw_asset"}  # not a leaf: the run fails with its loads
