# The image every Airflow service in docker-compose.yml runs: the official Airflow image plus the
# project's locked dependencies, its package, and the DAGs, dbt project and GX suites it reads.
FROM apache/airflow:3.3.2-python3.11

USER airflow
WORKDIR /opt/airflow

# Dependencies first, so a code change does not redo the long install. The lock pins apache-airflow
# to the base image's version, so Airflow itself is not replaced.
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
RUN pip install --no-cache-dir -r /opt/airflow/requirements.lock

COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 dbt_project/ /opt/airflow/dbt_project/
# mount point of the dbt-docs volume, which takes its owner from here: the tasks write the site, the api-server reads it
RUN mkdir -p /opt/airflow/dbt_project/target/docs
COPY --chown=airflow:0 expectations/ /opt/airflow/expectations/
COPY --chown=airflow:0 docker/airflow-init.sh /opt/airflow/docker/airflow-init.sh

# Editable on purpose: crm_warehouse finds dags/, dbt_project/ and expectations/ two levels above its
# own files (settings.PROJECT_ROOT), so it must be imported from /opt/airflow/plugins, not site-packages.
# `pip check` fails the build if the lock disagrees with a provider the base image ships (fab, celery).
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/airflow \
    && pip check
