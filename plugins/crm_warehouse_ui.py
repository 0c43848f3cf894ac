"""Airflow UI plugin: a "dbt docs" entry in the navigation's Browse menu, to the lineage site `make docs` serves.

Airflow loads every module of its plugins folder (this directory); the link is an external view (Airflow
3.1+), so it opens the docs site itself, wherever CRMWH_DBT_DOCS_URL says it is served.
"""

from airflow.plugins_manager import AirflowPlugin

from crm_warehouse import settings


class CrmWarehouseUi(AirflowPlugin):
    name = "crm_warehouse_ui"
    external_views = [
        {"name": "dbt docs", "href": url, "destination": "nav", "category": "browse"}
        for url in [settings.dbt_docs_url()] if url
    ]
