"""crm_ingest: extract every CRM object incrementally, gate each batch with GX, publish to raw_crm."""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from crm_warehouse import ingest_tasks, objects
from crm_warehouse.assets import RAW_CRM

DOC = """
### CRM ingest
One task per CRM object. Each extracts the rows whose `updated_at` moved past the object's watermark
(kept in `ops.watermarks`), streams them with COPY into `landing.<object>`, validates the batch with the
object's Great Expectations suite (`expectations/crm_<object>.json`) and, only if it passes, publishes
it to the append-only `raw_crm.<object>` and moves the watermark. A failing batch is **held**: nothing
is published and the task fails naming the rule and sample keys. Every batch is in `ops.load_batches`.
Objects wait for the objects they reference, so references are checked against published parents.
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
    },
)
def crm_ingest():
    @task
    def plan_run() -> str:
        return ingest_tasks.plan_run()

    @task
    def load(name: str, cutoff: str) -> dict:
        return ingest_tasks.load_object(name, cutoff, get_current_context()["run_id"])

    @task(outlets=[RAW_CRM])
    def publish_raw_asset(results: list[dict]) -> dict:
        return ingest_tasks.summarize(results)

    cutoff = plan_run()
    loads = {}
    for tier in objects.load_tiers():
        for name in tier:
            loads[name] = load.override(task_id=f"load_{name}")(name, cutoff)
            for parent in objects.get(name).parents:
                loads[parent] >> loads[name]
    publish_raw_asset(list(loads.values()))


crm_ingest()
