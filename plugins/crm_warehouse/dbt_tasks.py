"""crm_transform's dbt builds as Airflow tasks: one task per model, its tests included (astronomer-cosmos).

Cosmos' watcher mode renders a task group from the project's manifest: a producer task runs one `dbt build` of
the group's selection, with dbt's threads, and reports every node's result as it finishes; each model's task
(`<model>_run`) succeeds or fails with that result. A model's task stands for the model and its data tests, as
`dbt build` does: it fails when the model or one of its tests failed, and its log names which and why. A failed
model is red in the UI; clearing it (or its automatic retry) runs `dbt build` of that model alone, its tests
included.

The producers run the very builds of the CLI and the benchmarks (transform.build_core, build_marts_shadow:
the same in-process dbt, flags, vars and parsed manifest) and turn dbt's events into the model tasks' statuses
(StatusReport), so the task groups cost the bare builds plus the model tasks' own runs. Around the builds:

- the core producer builds only what is downstream of the CRM objects changed since the last core build
  (build_scope); the tasks of the models it did not build are marked skipped, so the UI shows what was rebuilt;
- the marts producer builds into the shadow schema it prepares first (write-audit-publish) and records a
  failed build in ops.marts_versions.

Cleared or retried, a producer builds again (Cosmos' own producer would skip itself on a retry).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowSkipException, DownstreamTasksSkipped
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import _PRODUCER_CMD_FLAGS_XCOM_KEY, ExecutionMode, InvocationMode, LoadMode, TestBehavior
from cosmos.operators._watcher.state import get_status_xcom_key, safe_xcom_push
from cosmos.operators.watcher import DbtProducerWatcherOperator, DbtRunWatcherOperator

from crm_warehouse import build_scope, transform

log = logging.getLogger(__name__)

PROFILE = ProfileConfig(profile_name="crm_warehouse", target_name="warehouse",
                        profiles_yml_filepath=transform.project_dir() / "profiles.yml")
# the flags a model task's retry passes to its `dbt build` (the producers' builds pass transform.build's)
RETRY_FLAGS = ["--exclude-resource-type", "unit_test"]


def render_manifest() -> Path:
    """The manifest the task groups are rendered from, parsed again only when the project or dbt changed.

    Its own target directory: a parse there leaves the builds' partial-parse state alone. Parsing takes
    ~8 s, once per change of the project; the dag-processor re-reads this file every few seconds otherwise.
    """
    target = transform.project_dir() / "target" / "render"
    manifest, stamp = target / "manifest.json", target / "fingerprint"
    fingerprint = build_scope.project_fingerprint(transform.project_dir(), transform.build_vars())
    if manifest.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return manifest
    scratch = target.with_name(f"render-{os.getpid()}")
    transform.run_dbt("parse", "--vars", json.dumps(transform.build_vars()), "--target-path", str(scratch),
                      warehouse_dsn="postgresql://parse-only@127.0.0.1/warehouse")
    target.mkdir(parents=True, exist_ok=True)
    os.replace(scratch / "manifest.json", manifest)  # atomic: a concurrent parse renders from a whole file
    shutil.rmtree(scratch)
    stamp.write_text(fingerprint)
    return manifest


def model_tests(nodes: dict, models: set[str], *, last: bool) -> dict[str, set[str]]:
    """The data tests a build of these models runs, per model: dbt's eager selection picks a test when one of
    its models is built; a group built before another (last=False: the core) leaves out the tests that also
    read a model of the later group. Unit tests and the tests the models or the load gate enforce
    (transform.LEFT_OUT_TESTS) are never run by the pipeline's builds."""
    tests: dict[str, set[str]] = {uid: set() for uid in models}
    for uid, node in nodes.items():
        if node["resource_type"] != "test" or _is_left_out(node, nodes):
            continue
        parents = {p for p in node["depends_on"]["nodes"] if p.startswith("model.")}
        if parents & models and (last or parents <= models):
            for parent in parents & models:
                tests[parent].add(uid)
    return tests


def _is_left_out(test: dict, nodes: dict) -> bool:
    """transform.is_left_out of a test of the rendered manifest."""
    return transform.is_left_out((test.get("test_metadata") or {}).get("name"),
                                 nodes.get(test.get("attached_node") or "", {}).get("config", {}).get("materialized"),
                                 str(test.get("config", {}).get("severity", "error")), test.get("tags", []))


def use_warehouse_profile(context: Any) -> None:
    """pre_execute of a model task: profiles.yml reads the warehouse from DBT_PG_* (transform.dbt_env) when a
    retry runs dbt. The session options stay out of the process env (they make every connection
    crm_transformer): they are the task's own env, which Cosmos sets for the dbt invocation only."""
    os.environ.update({k: v for k, v in transform.dbt_env().items() if k != "PGOPTIONS"})


def task_group(group_id: str, producer: type[_Producer], *, select: list[str] | None = None,
               exclude: list[str] | None = None, last: bool) -> DbtTaskGroup:
    manifest = render_manifest()
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(dbt_project_path=transform.project_dir(), manifest_path=manifest,
                                     dbt_vars=transform.build_vars(), install_dbt_deps=False,
                                     env_vars={"PGOPTIONS": transform.session_options(),
                                               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}),
        profile_config=PROFILE,
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.WATCHER,
                                         invocation_mode=InvocationMode.DBT_RUNNER,
                                         setup_operator_args={"retries": 0}),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, select=select or [], exclude=exclude or [],
                                   test_behavior=TestBehavior.NONE, emit_datasets=False),
        operator_args={"pre_execute": use_warehouse_profile},
    )
    _arrange(group, producer, json.loads(manifest.read_text())["nodes"], last=last)
    return group


def _arrange(group: DbtTaskGroup, producer_class: type[_Producer], nodes: dict, *, last: bool) -> None:
    """Give the tasks this module's classes; run the producer before every model's task.

    Cosmos creates the tasks from its own classes; the subclasses below only wrap them, so each object keeps
    Cosmos' state and is given its subclass. Models' tasks start after the producer: `airflow dags test` runs
    one task at a time, and a model task run before the producer would wait for it forever. The root ones run
    whatever the producer's outcome (all_done) to show each model's own result; the others run unless an
    upstream task failed (none_failed), so a model downstream of models the core build skipped shows its own.
    """
    tasks = [child for child in group.children.values() if not hasattr(child, "children")]
    producer = next(t for t in tasks if isinstance(t, DbtProducerWatcherOperator))
    producer.__class__ = producer_class
    models = [t for t in tasks if getattr(t, "producer_task_id", None) == producer.task_id]
    producer.model_tasks = {t.model_unique_id: t.task_id for t in models}
    producer.model_tests = {uid: sorted(tests) for uid, tests in
                            model_tests(nodes, set(producer.model_tasks), last=last).items()}
    in_group = {t.task_id for t in tasks}
    for task in models:
        task.__class__ = ModelBuild
        if not task.upstream_task_ids & in_group:
            producer >> task
            task.trigger_rule = "all_done"
        else:
            task.trigger_rule = "none_failed"


class _NoLineage:
    """No OpenLineage events from dbt's artifacts: the warehouse emits none, and computing them copies the
    invocation's env, dbt's session options included, into the process env for good (which, in the one
    process of `airflow dags test`, every later connection would use)."""

    def calculate_openlineage_events_completes(self, *args: Any, **kwargs: Any) -> bool:
        return False


NOT_RUN = ("upstream_failed", "skipped", "removed")
PASSED = ("success", "pass", "warn")


class ModelBuild(_NoLineage, DbtRunWatcherOperator):
    """A model's task: the result of the model and its tests in the producer's build; cleared or retried,
    `dbt build` of that model alone."""

    base_cmd = ["build"]

    def poke(self, context: Any) -> bool:
        """One XCom read for a model its producer reported on (Cosmos' own poke makes five)."""
        ti = context["ti"]
        if ti.try_number > 1:
            return super().poke(context)  # Cosmos: once the producer is done, build the model alone
        report = self._report(ti)
        if report is None:
            if self._get_producer_task_status(context) in NOT_RUN:
                raise AirflowSkipException(f"{self.producer_task_id} did not run: no dbt build to report on")
            return super().poke(context)
        return self._conclude(report)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        """After a deferral (a real scheduler's triggerer waited for the status): the same outcome as poke."""
        report = self._report(context["ti"])
        if report is None:
            super().execute_complete(context, event)
        else:
            self._conclude(report)

    def _report(self, ti: Any) -> dict | None:
        return ti.xcom_pull(task_ids=self.producer_task_id, key=get_status_xcom_key(self.model_unique_id))

    def _conclude(self, report: dict) -> bool:
        if report["status"] == "skipped":
            raise AirflowSkipException(f"{self.model_unique_id}: " + " | ".join(report.get("messages", [])))
        if report["status"] in PASSED:
            for line in report.get("messages", []):
                self.log.info("%s", line)
            return True
        raise AirflowException(f"{self.model_unique_id} failed in {self.producer_task_id}'s dbt build: "
                               + " | ".join(report.get("messages", [])))


class StatusReport:
    """dbt's events of one build, turned into each model task's status (the producer's XCom `<model>_status`).

    A model is reported when it and the tests of it that ran are done: failed when it failed or one of them
    did, with dbt's messages. dbt fires events from its threads; a lock keeps the tallies whole."""

    def __init__(self, ti: Any, model_tests: dict[str, list[str]]):
        self.ti = ti
        self.tests = model_tests
        self.models_of: dict[str, list[str]] = {}
        for model, tests in model_tests.items():
            for test in tests:
                self.models_of.setdefault(test, []).append(model)
        self.results: dict[str, tuple[str, str]] = {}  # unique id -> (dbt status, message)
        self.reported: set[str] = set()
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def on_event(self, event: Any) -> None:
        """dbt's callback: never raises (dbt would turn it into a node error); run() raises what it kept."""
        if event.info.name != "NodeFinished":
            return
        try:
            node = event.data.node_info
            with self.lock:
                self.results[node.unique_id] = (node.node_status, event.data.run_result.message)
                models = [node.unique_id] if node.unique_id in self.tests else self.models_of.get(node.unique_id, [])
                for model in models:
                    self._report_if_done(model)
        except Exception as exc:  # noqa: BLE001 - kept and raised after the build
            log.exception("Could not report %s", event.data.node_info.unique_id)
            self.errors.append(exc)

    def run(self, build: Callable[[Callable], None]) -> list[str]:
        """Run the build with this report. Returns the models it did not build. After a failure every model not
        reported yet is reported, skipped if it was not built: a root model task finding no status after a
        failed build would build its model alone."""
        try:
            build(self.on_event)
        except BaseException:
            with self.lock:
                for model in self.tests:
                    self._report_if_done(model, final=True)
            raise
        with self.lock:
            for model in self.results.keys() & self.tests.keys():
                self._report_if_done(model, final=True)
        if self.errors:
            raise self.errors[0]
        return [model for model in self.tests if model not in self.results]

    def _report_if_done(self, model: str, final: bool = False) -> None:
        if model in self.reported or (model not in self.results and not final):
            return
        status, message = self.results.get(model, ("skipped", "not in this build"))
        ran = {test: self.results[test] for test in self.tests[model] if test in self.results}
        if status in PASSED and len(ran) < len(self.tests[model]) and not final:
            return  # its tests are still to come
        failed = [f"{test.split('.')[2]}: {result[1]}" for test, result in ran.items() if result[0] not in PASSED
                  and result[0] != "skipped"]
        warned = [f"{test.split('.')[2]}: {result[1]}" for test, result in ran.items() if result[0] == "warn"]
        if status not in PASSED:
            value = {"status": "skipped" if status == "skipped" else "failed", "messages": [message]}
        elif failed:
            value = {"status": "failed", "messages": failed}
        else:
            passed = sum(result[0] in PASSED for result in ran.values())  # not the ones dbt skipped
            value = {"status": "success", "messages": [f"built ({message}); {passed} tests passed", *warned]}
        safe_xcom_push(self.ti, get_status_xcom_key(model), {**value, "outlet_uris": []})
        self.reported.add(model)


class _Producer(_NoLineage, DbtProducerWatcherOperator):
    model_tasks: dict[str, str]  # model unique id -> its task id
    model_tests: dict[str, list[str]]

    def run_build(self, on_event: Callable) -> None:
        raise NotImplementedError

    def execute(self, context: Any, **kwargs: Any) -> None:
        ti = context["ti"]
        safe_xcom_push(ti, _PRODUCER_CMD_FLAGS_XCOM_KEY, RETRY_FLAGS)
        not_built = StatusReport(ti, self.model_tests).run(self.run_build)
        if not_built:  # one call to Airflow instead of a task run each
            self.log.info("%d model tasks skipped: not in this build", len(not_built))
            raise DownstreamTasksSkipped(tasks=[self.model_tasks[model] for model in not_built])


class CoreBuild(_Producer):
    """transform.build_core: what is downstream of the changed CRM objects, recorded in ops.core_builds."""

    def run_build(self, on_event: Callable) -> None:
        transform.build_core(on_event=on_event)


class MartsBuild(_Producer):
    """transform.build_marts_shadow: the marts into the shadow schema (write); audit and publish follow."""

    def run_build(self, on_event: Callable) -> None:
        transform.build_marts_shadow(on_event=on_event)


def core_group() -> DbtTaskGroup:
    return task_group("dbt_core", CoreBuild, exclude=transform.MARTS.split(), last=False)


def marts_group() -> DbtTaskGroup:
    return task_group("dbt_marts", MartsBuild, select=transform.MARTS.split(), last=True)
