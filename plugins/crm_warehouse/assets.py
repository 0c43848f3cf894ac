"""Assets that link the DAGs: crm_ingest produces raw_crm, crm_transform consumes it."""

from airflow.sdk import Asset

RAW_CRM = Asset(name="crm_raw", uri="crm-warehouse://warehouse/raw_crm")
MARTS = Asset(name="crm_marts", uri="crm-warehouse://warehouse/marts")
