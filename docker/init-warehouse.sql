-- The warehouse server's databases and roles, created once by init-warehouse.sh.
--   :warehouse_user owns `warehouse` (WAREHOUSE_DSN) and `crm` (CRM_SOURCE_DSN), and may create roles:
--                   `crmwh init` creates crm_loader, crm_transformer, crm_analyst and crm_analyst_pii;
--   :airflow_user   owns only `airflow`, Airflow's metadata database.
-- Neither is a superuser; the `postgres` superuser is for administration only.

create role :"warehouse_user" login createrole password :'warehouse_password';
create role :"airflow_user" login password :'airflow_password';

create database warehouse owner :"warehouse_user";
create database crm owner :"warehouse_user";
create database airflow owner :"airflow_user";

-- By default every role may connect to every new database; keep each role to its own.
revoke all on database warehouse from public;
revoke all on database crm from public;
revoke all on database airflow from public;
