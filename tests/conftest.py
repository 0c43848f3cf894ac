"""Shared fixtures: the suite runs on its own embedded PostgreSQL, separate from the demo's."""

from __future__ import annotations

import os
import socket

import psycopg
import pytest

from crm_warehouse import embedded_postgres, settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def embedded(tmp_path_factory):
    """An embedded server for the whole session, with the warehouse, crm and airflow databases."""
    data = tmp_path_factory.mktemp("crmwh-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRMWH_DATA_DIR", str(data))
        mp.setenv("CRMWH_PG_PORT", str(free_port()))
        for name in ("WAREHOUSE_DSN", "CRM_SOURCE_DSN", "AIRFLOW_METADATA_DSN"):
            mp.delenv(name, raising=False)
        conns = settings.connections()
        yield conns
        embedded_postgres.stop()


def query(dsn: str, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def scalar(dsn: str, statement: str, params=None):
    return query(dsn, statement, params)[0][0]


def local_server_dsn(database: str = "postgres") -> str | None:
    """The machine's own PostgreSQL on 127.0.0.1:5432, when there is one."""
    dsn = os.environ.get("CRMWH_COMPAT_DSN", f"postgresql://postgres@127.0.0.1:5432/{database}")
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return dsn
    except psycopg.OperationalError:
        return None


def fresh_databases(embedded, *names: str) -> list[str]:
    """Empty databases of these names on the session's server (dropped first if there); their DSNs."""
    admin = settings.with_database(embedded.warehouse, "postgres")
    for name in names:
        query(admin, f"drop database if exists {name} with (force)")
        query(admin, f"create database {name}")
    return [settings.with_database(embedded.warehouse, name) for name in names]
