"""crm_ingest: extract every CRM object incrementally, gate each batch with GX, publish to raw_crm."""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from crm_warehouse import alerts, gx_docs, ingest_tasks, objects
from crm_warehouse.assets import RAW_CRM

DOC = """
### CRM ingest
One task per CRM object. Each extracts the rows whose `updated_at` moved past the object's watermark
(kept in `ops.watermarks`) and streams them with COPY into `landing.<object>`. The load gate runs the
row rules of the object's suite (`expectations/crm_<object>.json`) in one SQL scan and Great
Expectations validates the findings: rows that break an error rule go to `quarantine.<object>` with
the rules' names, the rest are published to the append-only `raw_crm.<object>` and the watermark moves.
A batch that breaks a batch rule (schema drift, stale source, volume far outside its history, too many
failing rows) is **held**: nothing is published, the task fails naming the object, rule and sample
keys, and `crmwh release` / `crmwh replay` resolve it. Every batch is in `ops.load_batches`.
Once a day (`CRMWH_DELETE_RECONCILE_HOURS`) each task then reconciles its object's keys with the source:
rows hard-deleted there get tombstones in raw (`is_deleted`, `_deleted_at`), see `ops.key_reconciliations`.
Objects wait for the objects they reference, so references are checked against published parents.
A backfill (`airflow backfill create --dag-id crm_ingest --from-date ... --to-date ...`) extracts each
past interval up to its end, in order, so it reproduces what hourly runs would have loaded.
`build_data_docs` renders the GX Data Docs of the run and logs where they are; failed tasks are
recorded in `ops.alerts`.
"""


@dag(
    dag_id="crm_ingest",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    tags=["crm", "ingest", "great_expectations"],
    default_args={
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": alerts.on_failure,
    },
)
def crm_ingest():
    @task
    def plan_run() -> str:
        return ingest_tasks.plan_run(ingest_tasks.backfill_until(get_current_context()))

    @task
    def load(name: str, cutoff: str) -> dict:
        return ingest_tasks.load_object(name, cutoff, get_current_context()["run_id"])

    @task(outlets=[RAW_CRM])
    def publish_raw_asset(results: list[dict]) -> dict:
        return ingest_tasks.summarize(results)

    @task(trigger_rule="all_done")  # also after a held batch: its validation is in the docs
    def build_data_docs() -> str:
        return str(gx_docs.build_and_log())

    cutoff = plan_run()
    loads = {}
    for tier in objects.load_tiers():
        for name in tier:
            loads[name] = load.override(task_id=f"load_{name}")(name, cutoff)
            for parent in objects.get(name).parents:
                loads[parent] >> loads[name]
    # the docs task runs after every load, failed or not, and is not a leaf: a failed load still
    # fails the run through publish_raw_asset
    docs = build_data_docs()
    list(loads.values()) >> docs >> publish_raw_asset(list(loads.values()))


crm_ingest()
