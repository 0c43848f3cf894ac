"""crm_transform's dbt builds as Airflow tasks: one task per model and one per model's tests (astronomer-cosmos).

Cosmos' watcher mode renders a task group from the project's manifest: a producer task runs one `dbt build` of
the group's selection, with dbt's threads, and reports every node's result as it finishes; each model's task
(`<model>.run`) and tests' task (`<model>.test`) succeed or fail with that result. A failed model is red in
the UI with dbt's message in its log; clearing it (or its automatic retry) runs `dbt run` / `dbt test` of
that model alone. The producers here are Cosmos' own, with the warehouse's bookkeeping around the build:

- the core producer builds only what is downstream of the CRM objects changed since the last core build
  (transform.core_build, build_scope); the tasks of the models it did not build are marked skipped, so the
  UI shows what was rebuilt;
- the marts producer builds into the shadow schema it prepares first (write-audit-publish) and records a
  failed build in ops.marts_versions.

Both pass the same flags as the pipeline's bare builds (transform.build): no unit tests, no not_null tests
postgres already enforces as constraints, the same vars.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException, DownstreamTasksSkipped
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
from cosmos.operators._watcher.aggregation import get_tests_status_xcom_key
from cosmos.operators._watcher.state import get_status_xcom_key
from cosmos.operators.watcher import DbtProducerWatcherOperator, DbtRunWatcherOperator, DbtTestWatcherOperator

from crm_warehouse import build_scope, marts_publish, transform

log = logging.getLogger(__name__)

PROFILE = ProfileConfig(profile_name="crm_warehouse", target_name="warehouse",
                        profiles_yml_filepath=transform.project_dir() / "profiles.yml")


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


def constrained_tests(manifest_path: Path) -> set[str]:
    """The unique ids of the tests transform.CONSTRAINED_TESTS selects: the not_null tests of table and
    incremental models, NOT NULL constraints of their tables, which the pipeline's builds leave out."""
    nodes = json.loads(manifest_path.read_text())["nodes"]
    return {uid for uid, node in nodes.items()
            if node["resource_type"] == "test" and (node.get("test_metadata") or {}).get("name") == "not_null"
            and nodes.get(node.get("attached_node") or "", {}).get("config", {}).get("materialized")
            in ("table", "incremental")}


def use_warehouse_profile(context: Any) -> None:
    """pre_execute of every dbt task: profiles.yml reads the warehouse from DBT_PG_* (transform.dbt_env). The
    session options stay out of the process env (they make every connection crm_transformer): they are the
    tasks' own env, which Cosmos sets for the dbt invocation only."""
    os.environ.update({k: v for k, v in transform.dbt_env().items() if k != "PGOPTIONS"})


def task_group(group_id: str, producer: type[DbtProducerWatcherOperator], *, select: list[str] | None = None,
               exclude: list[str] | None = None, threads: int | None = None) -> DbtTaskGroup:
    manifest = render_manifest()
    flags = ["--exclude-resource-type", "unit_test", *(["--threads", str(threads)] if threads else [])]
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(dbt_project_path=transform.project_dir(), manifest_path=manifest,
                                     dbt_vars=transform.build_vars()),
        profile_config=PROFILE,
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.WATCHER,
                                         invocation_mode=InvocationMode.DBT_RUNNER,
                                         setup_operator_args={"retries": 0, "dbt_cmd_flags": flags}),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, select=select or [], exclude=exclude or [],
                                   test_behavior=TestBehavior.AFTER_EACH, emit_datasets=False),
        operator_args={"pre_execute": use_warehouse_profile, "install_deps": False,
                       "env": {"PGOPTIONS": transform.session_options(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}},
    )
    _arrange(group, producer, constrained_tests(manifest))
    return group


def _arrange(group: DbtTaskGroup, producer_class: type[DbtProducerWatcherOperator], left_out: set[str]) -> None:
    """Give the tasks this module's classes; run the producer before every model's task.

    Cosmos creates the tasks from its own classes; the subclasses below only wrap them, so each object
    keeps Cosmos' state and is given its subclass. The producer leaves out the constraint tests as the
    bare builds do (by the same selectors; excluding them from the rendering by name would cost Cosmos
    seconds per DAG parse) and reports a model's tests when the rest of them have run. Models' tasks start
    after the producer: `airflow dags test` runs one task at a time, and a model task run before the
    producer would wait for it forever. The root ones run whatever the producer's outcome (all_done) to
    show each model's own result; the others run unless an upstream task failed (none_failed), so a model
    downstream of models the core build skipped still shows its own.
    """
    tasks = list(_tasks(group))
    in_group = {t.task_id for t in tasks}
    producer = next(t for t in tasks if isinstance(t, DbtProducerWatcherOperator))
    producer.__class__ = producer_class
    producer.exclude = " ".join(filter(None, [producer.exclude, *transform.CONSTRAINED_TESTS]))
    producer.tests_per_model = {model: [t for t in tests if t not in left_out]
                                for model, tests in producer.tests_per_model.items()}
    for task in tasks:
        if getattr(task, "producer_task_id", None) != producer.task_id:
            continue
        if isinstance(task, DbtTestWatcherOperator):
            task.__class__, task.retries = ModelTests, 0  # a failing test is not transient
        else:
            task.__class__ = ModelRun
        if not task.upstream_task_ids & in_group:
            producer >> task
            task.trigger_rule = "all_done"
        else:
            task.trigger_rule = "none_failed"


def _tasks(group) -> Iterator:
    for child in group.children.values():
        if hasattr(child, "children"):
            yield from _tasks(child)
        else:
            yield child


class _NoLineage:
    """No OpenLineage events from dbt's artifacts: the warehouse emits none, and computing them copies the
    invocation's env, dbt's session options included, into the process env for good (which, in the one
    process of `airflow dags test`, every later connection would use)."""

    def calculate_openlineage_events_completes(self, *args: Any, **kwargs: Any) -> bool:
        return False


class _ModelTask(_NoLineage):
    def poke(self, context: Any) -> bool:
        """Skipped when the producer did not run (a task upstream of the group failed): the root model tasks run
        after the producer whatever its outcome, and would otherwise wait for a build that never comes."""
        if self._get_producer_task_status(context) in NOT_RUN:
            raise AirflowSkipException(f"{self.producer_task_id} did not run: no dbt build to report on")
        return super().poke(context)


NOT_RUN = ("upstream_failed", "skipped", "removed")


class ModelRun(_ModelTask, DbtRunWatcherOperator):
    """A model's task: its result in the producer's build; cleared or retried, `dbt run` of that model."""


class ModelTests(_ModelTask, DbtTestWatcherOperator):
    """A model's tests: passed when all of them did in the producer's build; cleared or retried, `dbt test`."""


class _Producer(_NoLineage, DbtProducerWatcherOperator):
    def build(self, context: Any) -> list[str]:
        """Cosmos' `dbt build`; the tasks of the models (and models' tests) it did not report on: the ones it did
        not select. After a failure those are given a skipped status here (a model task finding no status after
        a failed build would run its model on its own)."""
        try:
            super().execute(context)
        except Exception:
            for task in self.not_reported(context):
                context["ti"].xcom_push(key=self.status_key(task), value=_SKIPPED[task.is_test_sensor])
            raise
        return [task.task_id for task in self.not_reported(context)]

    def model_tasks(self) -> list:
        return [task for task in self.dag.tasks if getattr(task, "producer_task_id", None) == self.task_id]

    def not_reported(self, context: Any) -> list:
        return [task for task in self.model_tasks()
                if context["ti"].xcom_pull(task_ids=self.task_id, key=self.status_key(task)) is None]

    @staticmethod
    def status_key(task) -> str:
        uid = task.model_unique_id
        return get_tests_status_xcom_key(uid) if task.is_test_sensor else get_status_xcom_key(uid)

    def skip(self, task_ids: list[str]) -> None:
        """Succeed, the tasks of models not built marked skipped: one call to Airflow instead of a task run each."""
        if task_ids:
            self.log.info("%d model and test tasks skipped: not in this build", len(task_ids))
            raise DownstreamTasksSkipped(tasks=task_ids)


_SKIPPED = {True: "skipped", False: {"status": "skipped", "outlet_uris": []}}  # a tests / a model status


class CoreBuild(_Producer):
    """`dbt build` of the core: what is downstream of the changed CRM objects, recorded in ops.core_builds."""

    def execute(self, context: Any, **kwargs: Any) -> None:
        with transform.core_build() as selectors:
            if selectors is None:
                not_built = [task.task_id for task in self.model_tasks()]
            else:
                if selectors:
                    self.select = " ".join(selectors)
                not_built = self.build(context)
        self.skip(not_built)


class MartsBuild(_Producer):
    """`dbt build` of the marts into the shadow schema (write); audit and publish are the next tasks."""

    def execute(self, context: Any, **kwargs: Any) -> None:
        marts_publish.prepare_shadow()
        try:
            not_built = self.build(context)
        except Exception as exc:
            transform.not_published("build", f"the dbt build of {marts_publish.SHADOW} failed: {exc}", None)
        self.skip(not_built)


def core_group() -> DbtTaskGroup:
    return task_group("dbt_core", CoreBuild, exclude=transform.MARTS.split(), threads=transform.CORE_THREADS)


def marts_group() -> DbtTaskGroup:
    return task_group("dbt_marts", MartsBuild, select=transform.MARTS.split())

