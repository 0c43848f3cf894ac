"""Run Airflow with the project's DAGs, metadata database and connections.

Airflow's metadata lives in its own database on the warehouse's server (never SQLite). The CLI runs
`airflow dags test` in a subprocess so a run is a real DAG run recorded in that database.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from crm_warehouse import settings
from crm_warehouse.errors import WarehouseError

# What the CLI echoes of `airflow dags test`: the package's own log lines and failures; dbt only in summary.
SHOWN = re.compile(r"\[crm_warehouse|Task failed|AirflowFailException|Error|state=failed")
DBT_DETAIL = re.compile(r"dbt: (?!.*(Done\.|Finished running|ERROR|FAIL|WARN))")
# Task progress in `airflow dags test`'s log: a task starts running, a task instance reaches a final state.
TASK_RUNNING = re.compile(r"task_id='([^']+)'.*state=<TaskInstanceState\.RUNNING")
TASK_FINISHED = re.compile(r"Task instance state updated .*new_state=(success|failed|skipped|upstream_failed)")
# The UI's one login, checked by Airflow's default SimpleAuthManager against the passwords file.
ADMIN_USER = "admin"


def airflow_home() -> Path:
    return settings.data_dir() / "airflow"


def passwords_file() -> Path:
    """SimpleAuthManager's passwords, JSON {"user": "password"}; Airflow's default name, so a password
    Airflow generated here before is kept."""
    return airflow_home() / "simple_auth_manager_passwords.json.generated"


def airflow_env(conns: settings.Connections | None = None) -> dict[str, str]:
    from crm_warehouse import transform

    conns = conns or settings.connections()
    meta = urlsplit(conns.airflow_metadata)
    sqlalchemy_url = urlunsplit(("postgresql+psycopg2", meta.netloc, meta.path, meta.query, ""))
    return {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home()),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url,
        # the UI asks for a login: one admin user, its password in passwords_file (ensure_admin_login)
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        # astronomer-cosmos (dbt_tasks): no usage reports from an offline warehouse; no copy of every model's
        # status into an Airflow variable, there for retrying a producer, which never retries here; its dbt
        # docs view in the Browse menu, served by the api-server from the site dbt_docs_generate writes
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY": "False",
        "AIRFLOW__COSMOS__DBT_DOCS_PROJECTS": json.dumps(
            {"crm_warehouse": {"dir": str(transform.docs_target()), "name": "dbt docs (in Airflow)"}}),
        "WAREHOUSE_DSN": conns.warehouse,
        "CRM_SOURCE_DSN": conns.source,
        "CRMWH_DATA_DIR": str(settings.data_dir()),
        # airflow standalone starts its components as `airflow ...` found on PATH
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.PROJECT_ROOT / "plugins"),
                                                     os.environ.get("PYTHONPATH")])),
    }


def ensure_admin_login(echo=print) -> Path:
    """Give the UI's admin user a password before Airflow starts; show it only when it is new.

    The file is created with mode 0600 (Airflow would create it world-readable); an existing one is
    tightened to 0600 and only its location is shown.
    """
    path = passwords_file()
    passwords = _read_passwords(path)
    if ADMIN_USER in passwords:
        path.chmod(0o600)
        echo(f"Airflow UI login: user {ADMIN_USER}, password in {path}")
        return path
    passwords[ADMIN_USER] = secrets.token_urlsafe(18)
    _write_private(path, json.dumps(passwords) + "\n")
    echo(f"Airflow UI login: user {ADMIN_USER}, password {passwords[ADMIN_USER]} "
         f"(shown only now; kept in {path}, mode 0600)")
    return path


def _read_passwords(path: Path) -> dict[str, str]:
    try:
        passwords = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError:
        passwords = None
    if not isinstance(passwords, dict):
        raise WarehouseError(f"{path} is not Airflow's JSON passwords file; move it away and start again "
                             f"to generate a new admin password.")
    return passwords


def _write_private(path: Path, text: str) -> None:
    """Write text to path with mode 0600 from the start (no moment when others could read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


def airflow_executable() -> str:
    """The airflow beside this Python (the project's venv), else the one on PATH (official image)."""
    candidate = Path(sys.executable).parent / "airflow"
    found = str(candidate) if candidate.exists() else shutil.which("airflow")
    if not found:
        raise WarehouseError("Airflow is not installed in this environment; run `make venv`.")
    return found


def migrate_metadata(env: dict[str, str] | None = None) -> None:
    airflow_home().mkdir(parents=True, exist_ok=True)
    result = subprocess.run([airflow_executable(), "db", "migrate"], env=env or airflow_env(),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise WarehouseError("Airflow could not prepare its metadata database: "
                             + _last_error(result.stdout + result.stderr))


def seed_connections_and_variables(env: dict[str, str], conns: settings.Connections) -> list[str]:
    """Set the Airflow connections crm_warehouse and crm_source to the project's DSNs (always: they follow
    WAREHOUSE_DSN, CRMWH_PG_PORT, CRMWH_PG_SSL, ...) and create a variable per settings.TUNABLES where missing
    (an engineer's value set in the UI is kept). Returns Airflow's report, a line per item."""
    import tempfile

    variables = {name: {"value": default or "", "description": meaning}
                 for name, (default, meaning) in settings.TUNABLES.items()}
    connections = {settings.WAREHOUSE_CONNECTION: conns.warehouse, settings.SOURCE_CONNECTION: conns.source}
    report = []
    with tempfile.TemporaryDirectory() as tmp:  # mode 0700: the connections file holds passwords
        for kind, content, extra in (("connections", connections, ["--overwrite"]),
                                     ("variables", variables, ["--action-on-existing-key", "skip"])):
            path = Path(tmp) / f"{kind}.json"
            _write_private(path, json.dumps(content))
            result = subprocess.run([airflow_executable(), kind, "import", str(path), *extra], env=env,
                                    capture_output=True, text=True)
            if result.returncode != 0 or "failed" in result.stdout:  # a failed variable still exits 0
                raise WarehouseError(f"Airflow could not import the project's {kind}: "
                                     + _last_error(result.stdout + result.stderr))
            report += [line for line in result.stdout.splitlines() if line.strip()]
    return report


def dags_test(dag_id: str, *, echo=print, env: dict[str, str] | None = None, on_task=None) -> Path:
    """Run one DAG in-process with `airflow dags test`; the full log goes to .data/logs/.

    on_task(task_id, finished_tasks) is called when a task starts and when one finishes (progress bars).
    """
    logs = settings.data_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log_path = logs / f"{dag_id}-{stamp}.log"
    started = time.perf_counter()
    with log_path.open("w") as log_file:
        process = subprocess.Popen([airflow_executable(), "dags", "test", dag_id], env=env or airflow_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        failed_state, current, finished = False, "", 0
        for line in process.stdout:
            log_file.write(line)
            if on_task and (running := TASK_RUNNING.search(line)) and running.group(1) != current:
                current = running.group(1)
                on_task(current, finished)
            if on_task and TASK_FINISHED.search(line):
                finished += 1
                on_task(current, finished)
            if SHOWN.search(line) and not DBT_DETAIL.search(line):
                echo("  " + _compact(line))
            if "DagRun Finished" in line and "state=failed" in line:
                failed_state = True
        code = process.wait()
    if code != 0 or failed_state:
        raise WarehouseError(f"DAG {dag_id} failed after {time.perf_counter() - started:.0f}s; full log: {log_path}")
    echo(f"  {dag_id} succeeded in {time.perf_counter() - started:.1f}s (log: {log_path})")
    return log_path


def dag_task_count(env: dict[str, str], dag_id: str) -> int | None:
    """Task instances of the DAG's newest run, from Airflow's metadata database (None before it exists)."""
    import psycopg

    meta = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    dsn = urlunsplit(("postgresql", meta.netloc, meta.path, meta.query, ""))
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        count = conn.execute(
            "select count(*) from task_instance where dag_id = %s and run_id = "
            "(select run_id from dag_run where dag_id = %s order by id desc limit 1)", (dag_id, dag_id)).fetchone()[0]
    return count or None


def _compact(line: str) -> str:
    """Airflow's structured log line reduced to its message."""
    line = line.rstrip()
    match = re.match(r"^\S+Z \[(\w+)\s*\] (.*?)(?:\s+\[[\w.]+\].*)?$", line)
    return f"{match.group(1)}: {match.group(2)}" if match else line[:300]


def _last_error(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
