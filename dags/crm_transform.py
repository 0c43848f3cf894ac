"""crm_transform: build the dbt project (staging -> core -> marts) whenever raw_crm changes."""

import pendulum
from airflow.sdk import dag, get_current_context, task

from crm_warehouse import alerts, dbt_tasks, gx_docs, settings, transform
from crm_warehouse.assets import MARTS, RAW_CRM

DOC = """
### CRM transform
Runs when `crm_ingest` publishes new batches to `raw_crm` (the `crm_raw` asset), in four steps:
1. task group `dbt_core`: `dbt build` of everything but the marts: staging (`stg_crm__*`), intermediates and
   the core star schema (`core.dim_*`, `core.fct_*`), with their data tests, only downstream of the CRM
   objects that changed. The large models are incremental: they rewrite only the keys changed in load
   batches they have not consumed (README, "How a transform stays incremental"). Each model is a task
   (`<model>_run`) standing for the model and its tests: one `dbt build` (task `dbt_producer_watcher`) runs
   them all and each task shows its model's result and dbt's message; clearing a failed model's task builds
   that model alone, tests included. Models the build did not need are skipped;
2. the predictive models, fitted by maximum likelihood on the core facts (BG/NBD, Gamma-Gamma, the
   churn-risk model), write their scores to schema `ml` and record each fit in `ml.model_runs`;
3. write-audit-publish of the marts, which join those scores: task group `dbt_marts` builds them into the
   shadow schema `marts_shadow` (with the marts' dbt tests, a task per model as above), the GX suites of
   `expectations/marts/` on the shadow, then one transaction swaps it in as `marts` (the previous version
   stays in `marts_previous`; `crmwh rollback` swaps it back). A failed build or audit leaves `marts` as it was.
4. `dbt docs generate` refreshes the lineage site served by `make docs` and by Airflow itself (Browse menu);
   `build_data_docs` renders the GX Data Docs of the audit (`crmwh quality-docs`), also after a failed audit.

A failed task is recorded in `ops.alerts` (and sent through the `crmwh_alerts` connection if defined).
"""


@dag(
    dag_id="crm_transform",
    schedule=[RAW_CRM],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    tags=["crm", "transform", "dbt"],
    default_args={"owner": "analytics-engineering", "retries": 1, "retry_delay": settings.transform_retry_delay(),
                  "on_failure_callback": alerts.on_failure},
)
def crm_transform():
    @task(trigger_rule="none_failed")  # the core's models are skipped when no CRM object changed
    def score_customers() -> dict:
        return transform.score_customers()

    @task(retries=0)
    def audit_marts() -> dict:
        return transform.audit_marts()

    @task(outlets=[MARTS])
    def publish_marts(audit: dict) -> int:
        return transform.publish_marts(get_current_context()["run_id"], audit)

    @task
    def dbt_docs_generate() -> str:
        return str(transform.generate_docs())

    @task(trigger_rule="all_done")  # also after a failed audit: its validations are in the docs
    def build_data_docs() -> str:
        return str(gx_docs.build_and_log())

    audit = audit_marts()
    dbt_tasks.core_group() >> score_customers() >> dbt_tasks.marts_group() >> audit
    publish = publish_marts(audit)
    publish >> dbt_docs_generate()
    publish >> build_data_docs()


crm_transform()
