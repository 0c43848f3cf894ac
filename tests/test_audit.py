"""ops.audit_log's monthly partitions and retention, on a real warehouse (the events themselves are checked
where they happen: test_access, test_quality_gates)."""

from __future__ import annotations

from datetime import date

import pytest

from crm_warehouse import audit, warehouse
from crm_warehouse.errors import WarehouseError
from tests.conftest import fresh_databases, query, scalar


@pytest.fixture()
def wh(embedded):
    (dsn,) = fresh_databases(embedded, "audit_wh")
    with warehouse.connect(dsn) as conn:
        warehouse.init_warehouse(conn)
    return dsn


def partitions(dsn: str) -> list[str]:
    return [r[0] for r in query(dsn, "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                                     "where i.inhparent = 'ops.audit_log'::regclass order by 1")]


def test_this_and_next_month_have_partitions_and_role_changes_are_logged(wh):
    this_month = scalar(wh, "select to_char(current_date, 'YYYYMM')")
    assert f"audit_log_{this_month}" in partitions(wh) and "audit_log_default" in partitions(wh)
    assert len(partitions(wh)) == 3
    changes = [r[0] for r in query(wh, "select detail->>'change' from ops.audit_log where action = 'role_change'")]
    assert "created schema raw_crm owned by crm_loader" in changes


def test_partitions_are_kept_thirteen_months_and_then_dropped(wh):
    with warehouse.connect(wh) as conn, conn.transaction():
        for month in range(1, 13):
            audit.maintain(conn, date(2025, month, 15))
        conn.execute("insert into ops.audit_log (action, actor, occurred_at) values ('load', 'test', '2025-01-31'), "
                     "('load', 'test', '2025-02-01')")
        # on 2026-02-28 the newest January 2025 row may be less than 13 months old: kept
        assert audit.maintain(conn, date(2026, 2, 28)) == ["created audit_log_202602", "created audit_log_202603"]
        assert audit.maintain(conn, date(2026, 3, 1)) == ["created audit_log_202604",
                                                          "dropped audit_log_202501 (older than 13 months)"]
    names = partitions(wh)
    assert "audit_log_202501" not in names and "audit_log_202502" in names
    assert query(wh, "select occurred_at::date::text from ops.audit_log where actor = 'test'") == [("2025-02-01",)]


def test_rows_written_while_their_partition_was_missing_move_into_it(wh):
    query(wh, "insert into ops.audit_log (action, actor, occurred_at) values ('publish', 'early', '2031-05-05')")
    assert scalar(wh, "select count(*) from ops.audit_log_default") == 1
    with warehouse.connect(wh) as conn, conn.transaction():
        assert "created audit_log_203105" in audit.maintain(conn, date(2031, 5, 1))
    assert scalar(wh, "select count(*) from ops.audit_log_203105 where actor = 'early'") == 1
    assert scalar(wh, "select count(*) from ops.audit_log_default") == 0


def test_retention_below_thirteen_months_is_refused(monkeypatch):
    monkeypatch.setenv("CRMWH_AUDIT_RETENTION_MONTHS", "6")
    with pytest.raises(WarehouseError, match="at least 13 months"):
        audit.retention_months()
