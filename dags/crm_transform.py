"""crm_transform: build the dbt project (staging -> core -> marts) whenever raw_crm changes."""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from crm_warehouse import transform
from crm_warehouse.assets import MARTS, RAW_CRM

DOC = """
### CRM transform
Runs when `crm_ingest` publishes new batches to `raw_crm` (the `crm_raw` asset), in three steps:
1. `dbt build` of everything but the marts: the staging views (`stg_crm__*`), intermediates and the
   core star schema (`core.dim_*`, `core.fct_*`), with their tests;
2. the predictive models, fitted by maximum likelihood on the core facts (BG/NBD, Gamma-Gamma, the
   churn-risk model), write their scores to schema `ml` and record each fit in `ml.model_runs`;
3. `dbt build` of the marts (`marts.mart_*`), which join those scores; then `dbt docs generate`
   refreshes the lineage site served by `make docs`.
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
    @task
    def dbt_build_core() -> None:
        transform.build_core()

    @task
    def score_customers() -> dict:
        return transform.score_customers()

    @task(outlets=[MARTS])
    def dbt_build_marts() -> None:
        transform.build_marts()

    @task
    def dbt_docs_generate() -> str:
        return str(transform.generate_docs())

    dbt_build_core() >> score_customers() >> dbt_build_marts() >> dbt_docs_generate()


crm_transform()
