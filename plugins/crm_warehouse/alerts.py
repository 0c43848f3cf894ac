"""Failure alerts: every failed task of the pipeline is recorded in ops.alerts and logged in one line.

Sending is off by default. Define the Airflow connection `crmwh_alerts` to send each alert as well:
* type http/https (e.g. AIRFLOW_CONN_CRMWH_ALERTS='https://hooks.example.com/path'): a JSON POST;
* type smtp (e.g. 'smtp://user:pass@mail.example.com:587?to=oncall%40example.com&from=crmwh%40example.com'):
  an email to the `to` extra (comma-separated), with STARTTLS when the server offers it.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from email.message import EmailMessage

from crm_warehouse import settings, warehouse

log = logging.getLogger(__name__)
CONNECTION_ID = "crmwh_alerts"


def on_failure(context) -> None:
    """Airflow on_failure_callback for the project's DAGs."""
    ti = context["task_instance"]
    exception = context.get("exception")
    reason = str(exception).strip().splitlines()[0] if exception else "no exception recorded"
    alert = {
        "dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id,
        "try_number": getattr(ti, "try_number", None),
        "message": f"{ti.dag_id}.{ti.task_id} failed in run {ti.run_id}: {reason}",
    }
    raise_alert(alert)


def raise_alert(alert: dict) -> None:
    log.error("ALERT %s", alert["message"])
    delivered_to, error = _deliver(alert)
    try:
        with warehouse.connect(settings.warehouse_dsn()) as wh:
            warehouse.init_warehouse(wh)
            wh.execute(
                "insert into ops.alerts (dag_id, task_id, run_id, try_number, message, delivered_to, delivery_error) "
                "values (%(dag_id)s, %(task_id)s, %(run_id)s, %(try_number)s, %(message)s, %(to)s, %(error)s)",
                {**alert, "to": delivered_to, "error": error},
            )
    except Exception as exc:  # an alert must never hide the failure it reports
        log.error("Could not record the alert in ops.alerts: %s", exc)


def _deliver(alert: dict) -> tuple[str | None, str | None]:
    connection = _connection()
    if connection is None:
        return None, None
    try:
        if connection.conn_type in ("http", "https"):
            return _post(connection, alert), None
        if connection.conn_type in ("smtp", "email"):
            return _email(connection, alert), None
        return None, f"connection {CONNECTION_ID} has type {connection.conn_type!r}; use http, https or smtp"
    except Exception as exc:  # noqa: BLE001 - recorded with the alert
        log.error("Could not send the alert through %s: %s", CONNECTION_ID, exc)
        return None, str(exc)


def _connection():
    try:
        from airflow.sdk import Connection

        return Connection.get(CONNECTION_ID)
    except Exception:  # noqa: BLE001 - undefined connection (the default) or no Airflow context
        return None


def _post(connection, alert: dict) -> str:
    scheme = connection.conn_type
    port = f":{connection.port}" if connection.port else ""
    path = connection.schema or ""  # an Airflow connection URI keeps its path in `schema`
    url = f"{scheme}://{connection.host}{port}/{path.lstrip('/')}"
    request = urllib.request.Request(url, data=json.dumps(alert).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    return url


def _email(connection, alert: dict) -> str:
    extra = connection.extra_dejson
    recipients = [r.strip() for r in extra.get("to", "").split(",") if r.strip()]
    if not recipients:
        raise ValueError(f"connection {CONNECTION_ID} needs a 'to' extra with the recipients")
    message = EmailMessage()
    message["Subject"] = f"[crmwh] {alert['dag_id']}.{alert['task_id']} failed"
    message["From"] = extra.get("from", "crmwh@localhost")
    message["To"] = ", ".join(recipients)
    message.set_content(alert["message"])
    with smtplib.SMTP(connection.host, connection.port or 25, timeout=10) as smtp:
        if smtp.has_extn("starttls"):
            smtp.starttls()
        if connection.login:
            smtp.login(connection.login, connection.password or "")
        smtp.send_message(message)
    return ", ".join(recipients)
