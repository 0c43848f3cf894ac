"""crm_transform: build the dbt project (staging -> core -> marts) whenever raw_crm changes."""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from crm_warehouse import transform
from crm_warehouse.assets import MARTS, RAW_CRM

DOC = """
### CRM transform
Runs when `crm_ingest` publishes new batches to `raw_crm` (the `crm_raw` asset). `dbt build` runs and
tests the staging views (`stg_crm__*`), the core star schema (`core.dim_*`, `core.fct_*`) and the marts
(`marts.mart_*`); then `dbt docs generate` refreshes the lineage site served by `make docs`.
"""


@dag(
    dag_id="crm_transform",
    schedule=[RAW_CRM],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    tags=["crm", "transform", "dbt"],
    default_args={"owner": "analytics-engineering", "retries": 1, "retry_delay": timedelta(minutes=1)},
)
def crm_transform():
    @task(outlets=[MARTS])
    def dbt_build() -> None:
        transform.build()

    @task
    def dbt_docs_generate() -> str:
        return str(transform.generate_docs())

    dbt_build() >> dbt_docs_generate()


crm_transform()
