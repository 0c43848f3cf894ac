"""Alert delivery by email, and the copy path's handling of bytes PostgreSQL text cannot hold."""

from __future__ import annotations

import threading
import time
import warnings

from crm_warehouse import alerts, source_copy
from crm_warehouse.warehouse import Column
from tests.conftest import query

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore  # noqa: E402 - stdlib on Python 3.11, the project's version
    import smtpd  # noqa: E402


class Inbox(smtpd.SMTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), None, decode_data=True)
        self.messages = []

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        self.messages.append((mailfrom, rcpttos, data))


def test_an_alert_is_emailed_through_an_smtp_connection_and_recorded(embedded, monkeypatch):
    inbox = Inbox()
    port = inbox.socket.getsockname()[1]
    thread = threading.Thread(target=asyncore.loop, kwargs={"timeout": 0.1}, daemon=True)
    thread.start()
    monkeypatch.setenv("AIRFLOW_CONN_CRMWH_ALERTS",
                       f"smtp://127.0.0.1:{port}?to=oncall%40example.com&from=crmwh%40example.com")
    alerts.raise_alert({"dag_id": "test_dag", "task_id": "load_orders", "run_id": "r1", "try_number": 1,
                        "message": "crm_ingest.load_orders failed in run r1: Batch 7 of orders held"})
    for _ in range(100):  # the SMTP session ends before send_message returns; give the server its turn
        if inbox.messages:
            break
        time.sleep(0.1)
    inbox.close()
    thread.join(timeout=5)
    assert len(inbox.messages) == 1
    sender, recipients, body = inbox.messages[0]
    assert (sender, recipients) == ("crmwh@example.com", ["oncall@example.com"])
    assert "Batch 7 of orders held" in body and "load_orders failed" in body and "[crmwh] test_dag." in body
    assert query(embedded.warehouse, "select delivered_to, delivery_error from ops.alerts where run_id = 'r1'") == [
        ("oncall@example.com", None)]


def test_without_a_connection_an_alert_is_only_recorded(embedded, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CRMWH_ALERTS", raising=False)
    alerts.raise_alert({"dag_id": "test_dag", "task_id": "audit_marts", "run_id": "r2", "try_number": 1,
                        "message": "crm_transform.audit_marts failed"})
    assert query(embedded.warehouse, "select delivered_to, delivery_error from ops.alerts where run_id = 'r2'") == [
        (None, None)]


def test_nul_bytes_and_invalid_utf8_are_escaped_and_flagged():
    columns = [Column("team_id", "bigint"), Column("name", "text"), Column("note", "text")]
    values, invalid = source_copy._decoded((7, b"a\x00b", b"caf\xe9"), columns, [False, True, True])
    assert values == [7, "a\\x00b", "caf\\xe9"]
    assert invalid == ["name", "note"]
    values, invalid = source_copy._decoded((8, "Zoë 😀".encode(), None), columns, [False, True, True])
    assert (values, invalid) == ([8, "Zoë 😀", None], [])
