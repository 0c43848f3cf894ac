"""Least privilege: the warehouse's database roles and what each may read and write, applied idempotently.

    crm_loader       owns landing, raw_crm, quarantine and ops: the load writes them; it has no access to
                     anything dbt builds
    crm_transformer  reads raw_crm and ops; owns every schema dbt builds (staging, intermediate, core, pii,
                     dbt_state, the marts and their shadow) and ml, where the predictive models write
    crm_analyst      reads marts only; personal data reaches it masked or as a keyed hash
                     (mart_customer_contacts), never in clear; writes nothing, not even temp tables
    crm_analyst_pii  everything crm_analyst reads, and schema pii: the same people in clear

The pipeline connects as the warehouse DSN's user (the owner, who runs `crmwh init`) and assumes a role for
each component's work with `set role`: the load as crm_loader, dbt and the predictive models as
crm_transformer. The orchestration's own bookkeeping (build ledger, marts versions, alerts) stays with the
owner, which is a member of both. `apply` creates what is missing and grants what is missing, so it can run
before every load and after every marts publish without rewriting catalog rows that are already right.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import psycopg
from psycopg import errors, sql

from crm_warehouse import settings
from crm_warehouse.errors import WarehouseError

log = logging.getLogger(__name__)

LOADER, TRANSFORMER, ANALYST, ANALYST_PII = "crm_loader", "crm_transformer", "crm_analyst", "crm_analyst_pii"
ROLES = (LOADER, TRANSFORMER, ANALYST, ANALYST_PII)
LOADER_SCHEMAS = ("landing", "raw_crm", "quarantine", "ops")
TRANSFORMER_SCHEMAS = ("staging", "intermediate", "core", "pii", "dbt_state", "ml",
                       "marts", "marts_shadow", "marts_previous")
MARTS, PII, KEYS = "marts", "pii", "crm_keys"
# relkinds whose owner `apply` moves to the schema's role, and the ALTER that does it
_ALTER_OWNER = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "S": "sequence"}


def apply(conn: psycopg.Connection, passwords: dict[str, str] | None = None) -> list[str]:
    """Roles, ownership and grants as described above; `passwords` also makes those roles logins.

    Returns what was changed, one line each (nothing when everything was already in place).
    """
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('crmwh.access'))")
        changes = _ensure_roles(conn)
        changes += _logins(conn, passwords or {})
        changes += _database_privileges(conn)
        changes += _schema_owners(conn)
        changes += _grants(conn)
        changes += _pseudonym_key(conn)
    for change in changes:
        log.info("Access: %s", change)
    return changes


def record_changes(conn: psycopg.Connection, changes: list[str]) -> None:
    """Each change of roles or privileges as a role_change row of the audit log."""
    from crm_warehouse import audit

    for change in changes:
        role = next((r for r in sorted(ROLES, key=len, reverse=True) if r in change), None)
        audit.record(conn, "role_change", object_name=role, detail={"change": change})


def assume(conn: psycopg.Connection, role: str) -> None:
    """Run the rest of this session as `role` (the component's least privilege)."""
    try:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
    except (errors.InvalidParameterValue, errors.InsufficientPrivilege, errors.UndefinedObject) as exc:
        raise WarehouseError(f"Cannot act as database role {role}: {str(exc).strip().splitlines()[0]}. "
                             f"Run `crmwh init` as the warehouse's owner to create the roles.") from exc


# -- roles ------------------------------------------------------------------------------------------


def _ensure_roles(conn: psycopg.Connection) -> list[str]:
    changes = []
    for role in ROLES:
        if not _role_exists(conn, role):
            try:
                with conn.transaction():  # another database's init may create it at the same moment
                    conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
                changes.append(f"created role {role}")
            except (errors.DuplicateObject, errors.UniqueViolation):
                pass
    if not _is_member(conn, ANALYST_PII, ANALYST):
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(ANALYST), sql.Identifier(ANALYST_PII)))
        changes.append(f"granted {ANALYST} to {ANALYST_PII}")
    superuser = conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0]
    for role in () if superuser else (LOADER, TRANSFORMER):
        if not _is_member(conn, "current_user", role):
            options = sql.SQL(" with inherit true, set true") if _server_version(conn) >= 160000 else sql.SQL("")
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("grant {} to current_user{}").format(sql.Identifier(role), options))
            except errors.InsufficientPrivilege as exc:
                user = conn.execute("select current_user").fetchone()[0]
                raise WarehouseError(
                    f"Database role {role} exists but {user} may not act as it ({str(exc).strip()}); a superuser "
                    f"must run: grant {role} to {user}{options.as_string(conn)}") from exc
            changes.append(f"granted {role} to the warehouse owner")
    return changes


def _logins(conn: psycopg.Connection, passwords: dict[str, str]) -> list[str]:
    for role, password in passwords.items():
        # a literal, not a parameter: utility statements take none; the server hashes it (scram-sha-256)
        conn.execute(sql.SQL("alter role {} login password {}").format(sql.Identifier(role), sql.Literal(password)))
    return [f"set the login password of {role}" for role in passwords]


def login_passwords() -> dict[str, str]:
    """Passwords of the roles that log in: the environment's CRMWH_<ROLE>_PASSWORD; on the embedded server,
    generated once and kept under .data/secrets/ (mode 0600) when the environment gives none."""
    found = {role: os.environ[_password_variable(role)] for role in ROLES if os.environ.get(_password_variable(role))}
    if settings.uses_embedded_server():
        for role in ROLES:
            found.setdefault(role, generated_password(role))
    return found


def password_file(role: str) -> Path:
    return settings.data_dir() / "secrets" / f"{role}.password"


def role_dsn(warehouse_dsn: str, role: str) -> str:
    """The warehouse DSN logged in as `role`, with its password from login_passwords."""
    from urllib.parse import quote, urlsplit, urlunsplit

    password = login_passwords().get(role)
    if password is None:
        raise WarehouseError(f"No password is known for {role}: set {_password_variable(role)}.")
    parts = urlsplit(warehouse_dsn)
    netloc = f"{role}:{quote(password, safe='')}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _password_variable(role: str) -> str:
    return f"CRMWH_{role.upper()}_PASSWORD"


def generated_password(role: str) -> str:
    """The role's password from .data/secrets/ (mode 0600), generated the first time."""
    path = password_file(role)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


# -- database and schemas ---------------------------------------------------------------------------


def _database_privileges(conn: psycopg.Connection) -> list[str]:
    """Connect for the project's roles only (not PUBLIC: Airflow's metadata owner, for one, has no business
    here); temp tables for the loader and dbt only (an analyst writes nothing); create schemas for dbt."""
    changes = []
    # PUBLIC first: a role's own grant is checked next, and must not pass through PUBLIC's
    for privilege in ("CONNECT", "TEMPORARY"):
        if conn.execute("select has_database_privilege('public', current_database(), %s)", (privilege,)).fetchone()[0]:
            conn.execute(sql.SQL("revoke {} on database {} from public").format(
                sql.SQL(privilege), sql.Identifier(_database(conn))))
            changes.append(f"revoked {privilege.lower()} on the database from public")
    wanted = {LOADER: ("CONNECT", "TEMPORARY"), TRANSFORMER: ("CONNECT", "TEMPORARY", "CREATE"),
              ANALYST: ("CONNECT",), ANALYST_PII: ("CONNECT",)}
    for role, privileges in wanted.items():
        missing = [p for p in privileges if not conn.execute(
            "select has_database_privilege(%s, current_database(), %s)", (role, p)).fetchone()[0]]
        if missing:
            conn.execute(sql.SQL("grant {} on database {} to {}").format(
                sql.SQL(", ").join(map(sql.SQL, missing)), sql.Identifier(_database(conn)), sql.Identifier(role)))
            changes.append(f"granted {', '.join(missing).lower()} on the database to {role}")
    if _schema_exists(conn, "public") and conn.execute(
            "select has_schema_privilege('public', 'public', 'CREATE')").fetchone()[0]:
        conn.execute("revoke create on schema public from public")
        changes.append("revoked create on schema public from public")
    return changes


def _schema_owners(conn: psycopg.Connection) -> list[str]:
    """The loader's schemas exist and are the loader's; dbt's are the transformer's once they exist. Objects
    made before the roles existed (by the owner) are handed over, so each role can change its own tables."""
    changes = []
    for schema in LOADER_SCHEMAS:
        if not _schema_exists(conn, schema):
            conn.execute(sql.SQL("create schema {} authorization {}").format(
                sql.Identifier(schema), sql.Identifier(LOADER)))
            changes.append(f"created schema {schema} owned by {LOADER}")
    for schemas, role in ((LOADER_SCHEMAS, LOADER), (TRANSFORMER_SCHEMAS, TRANSFORMER)):
        for schema in schemas:
            if _schema_exists(conn, schema) and _schema_owner(conn, schema) != role:
                conn.execute(sql.SQL("alter schema {} owner to {}").format(
                    sql.Identifier(schema), sql.Identifier(role)))
                changes.append(f"schema {schema} now owned by {role}")
        changes += _object_owners(conn, schemas, role)
    if not _schema_exists(conn, KEYS):
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(KEYS)))
        conn.execute(sql.SQL("revoke all on schema {} from public").format(sql.Identifier(KEYS)))
        changes.append(f"created schema {KEYS}")
    return changes


def _object_owners(conn: psycopg.Connection, schemas: tuple[str, ...], role: str) -> list[str]:
    # tables before sequences: a table's owned sequences follow it
    moved = []
    for kinds in (("r", "p", "v", "m"), ("S",)):
        rows = conn.execute("""
            select c.oid::regclass::text, c.relkind::text from pg_class c
            join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = any(%s) and c.relkind = any(%s) and c.relowner <> %s::regrole""",
                            (list(schemas), list(kinds), role)).fetchall()
        for name, kind in rows:
            conn.execute(sql.SQL("alter {} {} owner to {}").format(
                sql.SQL(_ALTER_OWNER[kind]), sql.SQL(name), sql.Identifier(role)))
            moved.append(name)
    return [f"{len(moved)} relation(s) in {', '.join(schemas)} now owned by {role}"] if moved else []


# -- grants -----------------------------------------------------------------------------------------


def _grants(conn: psycopg.Connection) -> list[str]:
    """Who reads what: dbt reads raw_crm and the load ledger; analysts read the marts; the pii analyst
    also reads pii. Default privileges give the same to tables created later by the schema's owner."""
    changes = []
    for schema, owner, reader in (("raw_crm", LOADER, TRANSFORMER), ("ops", LOADER, TRANSFORMER),
                                  (MARTS, TRANSFORMER, ANALYST), (PII, TRANSFORMER, ANALYST_PII)):
        changes += _schema_read(conn, schema, owner, reader)
    return changes


def apply_marts(conn: psycopg.Connection) -> list[str]:
    """Re-applied after every publish and rollback: the swapped-in schema is another schema object, and the
    swapped-out one (marts_previous, kept for a rollback) takes the live grants with it: analysts read marts only."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('crmwh.access'))")
        changes = _schema_read(conn, MARTS, TRANSFORMER, ANALYST)
        for schema in ("marts_previous", "marts_shadow"):
            if _schema_exists(conn, schema) and conn.execute(
                    "select has_schema_privilege(%s, %s, 'USAGE')", (ANALYST, schema)).fetchone()[0]:
                conn.execute(sql.SQL("revoke usage on schema {} from {}").format(
                    sql.Identifier(schema), sql.Identifier(ANALYST)))
                changes.append(f"revoked usage on schema {schema} from {ANALYST}")
        return changes


def _schema_read(conn: psycopg.Connection, schema: str, owner: str, reader: str) -> list[str]:
    if not _schema_exists(conn, schema):
        return []
    changes = []
    names = {"schema": sql.Identifier(schema), "owner": sql.Identifier(owner), "reader": sql.Identifier(reader)}
    if not conn.execute("select has_schema_privilege(%s, %s, 'USAGE')", (reader, schema)).fetchone()[0]:
        conn.execute(sql.SQL("grant usage on schema {schema} to {reader}").format(**names))
        changes.append(f"granted usage on schema {schema} to {reader}")
    unreadable = [r[0] for r in conn.execute("""
        select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm') and not has_table_privilege(%s, c.oid, 'SELECT')
        """, (schema, reader)).fetchall()]
    for name in unreadable:
        conn.execute(sql.SQL("grant select on {} to {reader}").format(sql.SQL(name), **names))
    if unreadable:
        changes.append(f"granted select on {len(unreadable)} relation(s) in {schema} to {reader}")
    if not conn.execute("""
            select exists (select from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace,
                           aclexplode(d.defaclacl) a
                           where n.nspname = %s and d.defaclrole = %s::regrole and d.defaclobjtype = 'r'
                             and a.grantee = %s::regrole and a.privilege_type = 'SELECT')""",
                        (schema, owner, reader)).fetchone()[0]:
        conn.execute(sql.SQL("alter default privileges for role {owner} in schema {schema} "
                             "grant select on tables to {reader}").format(**names))
        changes.append(f"tables {owner} creates in {schema} are readable by {reader}")
    return changes


def _pseudonym_key(conn: psycopg.Connection) -> list[str]:
    """crm_keys.pii_hash_key: the secret of the keyed SHA-256 pseudonyms analysts get instead of an email or a
    phone (dbt macro pseudonym). Generated once (256 bits) and readable by crm_transformer only, which sees
    the clear values anyway; without it nobody can hash a list of candidate emails to unmask pseudonyms."""
    changes = []
    if not conn.execute("select to_regclass('crm_keys.pii_hash_key') is not null").fetchone()[0]:
        conn.execute("""
            create table crm_keys.pii_hash_key (
                singleton boolean primary key default true check (singleton),
                key bytea not null,
                created_at timestamptz not null default clock_timestamp()
            )""")
        conn.execute("insert into crm_keys.pii_hash_key (key) values (%s)", (secrets.token_bytes(32),))
        changes.append("created crm_keys.pii_hash_key with a new key")
    if not conn.execute("select has_table_privilege(%s, 'crm_keys.pii_hash_key', 'SELECT')",
                        (TRANSFORMER,)).fetchone()[0]:
        conn.execute(sql.SQL("grant usage on schema crm_keys to {}").format(sql.Identifier(TRANSFORMER)))
        conn.execute(sql.SQL("grant select on crm_keys.pii_hash_key to {}").format(sql.Identifier(TRANSFORMER)))
        changes.append(f"granted select on crm_keys.pii_hash_key to {TRANSFORMER}")
    return changes


# -- catalog lookups --------------------------------------------------------------------------------


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("select exists (select from pg_roles where rolname = %s)", (role,)).fetchone()[0]


def _is_member(conn: psycopg.Connection, member: str, role: str) -> bool:
    """member has role's privileges (inherits them) and, from PostgreSQL 16, may `set role` to it;
    `current_user` names the connected user."""
    modes = ["USAGE", "SET"] if _server_version(conn) >= 160000 else ["USAGE"]
    who = sql.SQL("current_user") if member == "current_user" else sql.Literal(member)
    return all(conn.execute(sql.SQL("select pg_has_role({}, {}, {})").format(
        who, sql.Literal(role), sql.Literal(mode))).fetchone()[0] for mode in modes)


def _server_version(conn: psycopg.Connection) -> int:
    return conn.info.server_version


def _database(conn: psycopg.Connection) -> str:
    return conn.info.dbname


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return conn.execute("select to_regnamespace(%s) is not null", (schema,)).fetchone()[0]


def _schema_owner(conn: psycopg.Connection, schema: str) -> str:
    return conn.execute("select nspowner::regrole::text from pg_namespace where nspname = %s", (schema,)).fetchone()[0]
