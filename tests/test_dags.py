"""Every DAG file imports cleanly and wires the tasks the design promises."""

from __future__ import annotations

import json

import pytest

from crm_warehouse import dbt_tasks, objects, settings


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        from airflow.dag_processing.dagbag import DagBag

        # the task groups render from a parsed manifest; parsed here first, since a full parse (~20 s on a slow
        # machine) inside the DAG file's import can exceed the DagBag's 30 s import timeout
        dbt_tasks.render_manifest()
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


def test_transform_tasks_retry_once_after_the_configured_delay(dagbag, monkeypatch):
    from datetime import timedelta

    from crm_warehouse.errors import WarehouseError

    core_model = dagbag.dags["crm_transform"].get_task("dbt_core.fct_orders_run")
    assert (core_model.retries, core_model.retry_delay) == (1, timedelta(minutes=1))
    monkeypatch.setenv("CRMWH_TRANSFORM_RETRY_DELAY_SECONDS", "7.5")
    assert settings.transform_retry_delay() == timedelta(seconds=7.5)
    monkeypatch.setenv("CRMWH_TRANSFORM_RETRY_DELAY_SECONDS", "soon")
    with pytest.raises(WarehouseError, match="CRMWH_TRANSFORM_RETRY_DELAY_SECONDS must be a number of seconds"):
        settings.transform_retry_delay()


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
    audit = dag.get_task("audit_marts")
    assert all(task_id.startswith("dbt_marts.") for task_id in audit.upstream_task_ids)
    assert {t for t in dag.task_ids if t.startswith("dbt_marts.")} <= _upstream(audit)  # every mart and its tests
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


def test_the_audits_data_docs_are_built_after_the_publish_and_after_a_failed_audit(dagbag):
    dag = dagbag.dags["crm_transform"]
    docs = dag.get_task("build_data_docs")
    assert docs.trigger_rule == "all_done"
    assert docs.upstream_task_ids == {"publish_marts"}
    # dbt_docs_generate stays a leaf after publish_marts: a failed audit still fails the run
    assert dag.get_task("dbt_docs_generate").upstream_task_ids == {"publish_marts"}


def _manifest():
    from crm_warehouse import dbt_tasks

    return json.loads(dbt_tasks.render_manifest().read_text())


def test_transform_has_a_task_per_dbt_model_in_dbt_order(dagbag):
    """Every model of the project is a task (its tests included) in the group that builds it, after the tasks of
    the models it selects from, and after the group's one `dbt build`; cleared, it builds its model alone."""
    from crm_warehouse import dbt_tasks

    dag, manifest = dagbag.dags["crm_transform"], _manifest()
    models = {uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    marts = {uid for uid, node in models.items() if node["path"].startswith("marts/")
             or "as_of" in node["tags"]}
    for uid, node in models.items():
        group = "dbt_marts" if uid in marts else "dbt_core"
        task = dag.get_task(f"{group}.{node['name']}_run")
        assert isinstance(task, dbt_tasks.ModelBuild) and task.model_unique_id == uid
        for parent in manifest["parent_map"][uid]:
            if parent in models and (parent in marts) == (uid in marts):  # the marts' core parents are a group before
                assert f"{group}.{models[parent]['name']}_run" in task.upstream_task_ids, (uid, parent)
        assert f"{group}.dbt_producer_watcher" in _upstream(task)
    assert isinstance(dag.get_task("dbt_core.dbt_producer_watcher"), dbt_tasks.CoreBuild)
    assert isinstance(dag.get_task("dbt_marts.dbt_producer_watcher"), dbt_tasks.MartsBuild)
    model_tasks = [t for t in dag.tasks if isinstance(t, dbt_tasks.ModelBuild)]
    assert len(model_tasks) == len(models) and all(t.base_cmd == ["build"] for t in model_tasks)


def _upstream(task) -> set[str]:
    seen, todo = set(), [task]
    while todo:
        for parent in todo.pop().upstream_list:
            if parent.task_id not in seen:
                seen.add(parent.task_id)
                todo.append(parent)
    return seen


def test_each_model_task_reports_the_tests_its_build_runs(dagbag):
    """A model's task waits for the tests of it that the group's build runs: the ones `dbt ls` selects with the
    pipeline's selection (transform.build: no unit tests, none of transform.LEFT_OUT_TESTS), which the builds
    leave out by the tag their parsed manifest gives those tests (transform.LEFT_OUT_TAG)."""
    from crm_warehouse import transform

    dag = dagbag.dags["crm_transform"]
    core, marts = dag.get_task("dbt_core.dbt_producer_watcher"), dag.get_task("dbt_marts.dbt_producer_watcher")
    dbt_vars = json.dumps(transform.build_vars())

    def listed_tests(selection: list[str], *left_out: str, manifest=None) -> set[str]:
        listed = transform.run_dbt("ls", "--resource-type", "test", "--output", "json", "--output-keys", "unique_id",
                                   *selection, *left_out, "--vars", dbt_vars, manifest=manifest)
        return {json.loads(line)["unique_id"] for line in listed}

    for producer, selection in ((core, ["--exclude", *transform.MARTS.split()]),
                                (marts, ["--select", *transform.MARTS.split(), "--exclude"])):
        selected = listed_tests(selection, *transform.LEFT_OUT_TESTS)
        reported = {test for tests in producer.model_tests.values() for test in tests}
        assert selected and reported == selected, (producer.task_id, reported ^ selected)
        by_tag = listed_tests(selection, f"tag:{transform.LEFT_OUT_TAG}", manifest=transform._parsed_manifest(dbt_vars))
        assert by_tag == selected, (producer.task_id, by_tag ^ selected)
        assert set(producer.model_tests) == set(producer.model_tasks)
