"""Least privilege, shown by logging in as each role: a small warehouse is loaded and built, then every
role tries what it must and must not be able to do. Personal data is checked against the clear values:
no text an analyst can read equals a customer's email, phone or name."""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import errors

from crm_warehouse import (
    access,
    cli,
    extract_load,
    marts_audit,
    marts_publish,
    settings,
    simulator,
    transform,
    warehouse,
)
from crm_warehouse.errors import WarehouseError
from tests.conftest import fresh_databases, query, scalar

PASSWORDS = {role: secrets.token_urlsafe(16) for role in access.ROLES}


def as_role(dsn: str, role: str, password: str | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = f"{role}:{quote(password or PASSWORDS[role], safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


@pytest.fixture(scope="module")
def built(embedded):
    source, wh = fresh_databases(embedded, "access_crm", "access_wh")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", wh)
        mp.setenv("CRM_SOURCE_DSN", source)
        with warehouse.connect(wh) as conn:
            warehouse.init_warehouse(conn, passwords=PASSWORDS)
        simulator.simulate(source, scale=0.01, seed=3, quiet=True)
        extract_load.load_all("access")
        transform.build_all()
        transform.build_marts()  # a second publish: the swapped-in schema must keep the analysts' grants
        yield wh


def refused(dsn: str, statement: str) -> bool:
    """True when postgres refuses the statement for lack of privilege."""
    try:
        query(dsn, statement)
    except errors.InsufficientPrivilege:
        return True
    return False


def test_the_analyst_reads_the_marts_and_nothing_else(built):
    analyst = as_role(built, access.ANALYST)
    assert scalar(analyst, "select count(*) from marts.mart_customer_ltv") > 0
    assert scalar(analyst, "select count(*) from marts.mart_customer_contacts") > 0
    for relation in ("raw_crm.customers", "quarantine.customers", "landing.customers", "ops.load_batches",
                     "staging.stg_crm__customers", "core.dim_customer", "pii.pii_customer_contacts",
                     "ml.customer_ltv_scores", "crm_keys.pii_hash_key", "marts_previous.mart_customer_ltv"):
        assert refused(analyst, f"select * from {relation} limit 1"), relation


def test_the_analyst_writes_nowhere(built):
    analyst = as_role(built, access.ANALYST)
    for statement in ("create table marts.scratch (i int)", "create table public.scratch (i int)",
                      "create temp table scratch (i int)", "create schema scratch",
                      "delete from marts.mart_customer_ltv", "update marts.mart_customer_rfm set segment = 'x'",
                      "insert into marts.mart_rfm_segments (rfm_segment) values ('x')"):
        assert refused(analyst, statement), statement


def test_personal_data_reaches_the_analyst_only_masked_or_pseudonymised(built):
    clear = {value for row in query(as_role(built, access.ANALYST_PII),
                                    "select email, phone, full_name, first_name || ' ' || last_name "
                                    "from pii.pii_customer_contacts union all "
                                    "select email, phone, full_name, null from pii.pii_account_contacts")
             for value in row if value}
    assert len(clear) > 100
    analyst = as_role(built, access.ANALYST)
    text_columns = query(analyst, """
        select table_name, column_name from information_schema.columns
        where table_schema = 'marts' and data_type in ('text', 'character varying')""")
    seen = set()
    for table, column in text_columns:
        seen |= {v for (v,) in query(analyst, f'select distinct "{column}" from marts."{table}"') if v}
    assert not seen & clear, sorted(seen & clear)[:5]


def test_pseudonyms_are_a_keyed_sha256_the_pii_analyst_can_resolve(built):
    key = bytes(scalar(built, "select key from crm_keys.pii_hash_key"))
    pii = as_role(built, access.ANALYST_PII)
    rows = query(pii, """
        select p.email, p.phone, m.email_pseudonym, m.phone_pseudonym, m.email_masked
        from marts.mart_customer_contacts m join pii.pii_customer_contacts p using (customer_id)
        where p.email is not null and p.phone is not null limit 20""")
    assert len(rows) == 20
    for email, phone, email_pseudonym, phone_pseudonym, masked in rows:
        assert email_pseudonym == hashlib.sha256(key + email.strip().lower().encode()).hexdigest()
        digits = "".join(c for c in phone if c.isdigit())
        assert phone_pseudonym == hashlib.sha256(key + digits.encode()).hexdigest()
        assert masked == email[0] + "***@" + email.split("@")[1]


def test_the_loader_cannot_read_what_dbt_builds(built):
    loader = as_role(built, access.LOADER)
    assert scalar(loader, "select count(*) from ops.load_batches") > 0
    assert scalar(loader, "select count(*) from raw_crm.customers") > 0
    for relation in ("marts.mart_customer_ltv", "core.dim_customer", "staging.stg_crm__customers",
                     "pii.pii_customer_contacts", "crm_keys.pii_hash_key"):
        assert refused(loader, f"select * from {relation} limit 1"), relation


def test_the_transformer_reads_the_ledger_but_cannot_change_it(built):
    transformer = as_role(built, access.TRANSFORMER)
    assert scalar(transformer, "select count(*) from ops.load_batches") > 0
    assert scalar(transformer, "select count(*) from raw_crm.customers") > 0
    for statement in ("insert into ops.alerts (message) values ('x')", "delete from ops.load_batches",
                      "update ops.watermarks set watermark = now()", "create table ops.scratch (i int)",
                      "drop table ops.load_batches", "insert into raw_crm.customers (customer_id) values (1)"):
        assert refused(transformer, statement), statement


def test_every_component_works_as_its_role(built):
    owners = dict(query(built, """
        select n.nspname, pg_get_userbyid(n.nspowner) from pg_namespace n
        where nspname in ('landing', 'raw_crm', 'quarantine', 'ops', 'staging', 'core', 'ml', 'marts', 'pii')"""))
    assert owners == {"landing": "crm_loader", "raw_crm": "crm_loader", "quarantine": "crm_loader",
                      "ops": "crm_loader", "staging": "crm_transformer", "core": "crm_transformer",
                      "ml": "crm_transformer", "marts": "crm_transformer", "pii": "crm_transformer"}
    foreign = query(built, """
        select c.oid::regclass::text, pg_get_userbyid(c.relowner) from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('landing', 'raw_crm', 'quarantine', 'ops', 'staging', 'intermediate', 'core', 'ml',
                            'marts', 'pii') and c.relkind in ('r', 'v', 'm')
          and pg_get_userbyid(c.relowner) not in ('crm_loader', 'crm_transformer')""")
    assert foreign == []


def test_new_tables_keep_the_right_grants(built):
    with psycopg.connect(built, autocommit=True) as conn:
        access.assume(conn, access.LOADER)
        conn.execute("create table raw_crm.added_later (i int)")
    try:
        assert scalar(as_role(built, access.TRANSFORMER), "select count(*) from raw_crm.added_later") == 0
    finally:
        query(built, "drop table raw_crm.added_later")


def test_access_is_applied_once(built):
    with warehouse.connect(built) as conn:
        assert access.apply(conn) == []


def test_an_owner_made_warehouse_is_handed_to_the_roles(built):
    query(built, "create table core.made_by_the_owner (i int)")
    query(built, "alter table marts.mart_rfm_segments owner to current_user")
    with warehouse.connect(built) as conn:
        changes = access.apply(conn)
    assert any("now owned by crm_transformer" in change for change in changes)
    owner = "select pg_get_userbyid(relowner) from pg_class where oid = 'core.made_by_the_owner'::regclass"
    assert scalar(built, owner) == "crm_transformer"
    assert scalar(as_role(built, access.ANALYST), "select count(*) from marts.mart_rfm_segments") > 0
    query(built, "drop table core.made_by_the_owner")


def test_login_failures_are_one_clear_line(built):
    analyst = as_role(built, access.ANALYST)
    with pytest.raises(WarehouseError) as wrong:
        warehouse.connect(as_role(built, access.ANALYST, "not-the-password"))
    try:
        query(built, "alter role crm_analyst valid until '2001-01-01'")
        with pytest.raises(WarehouseError) as expired:
            warehouse.connect(analyst)
        query(built, "alter role crm_analyst valid until 'infinity' nologin")
        with pytest.raises(WarehouseError) as revoked:
            warehouse.connect(analyst)
    finally:
        query(built, "alter role crm_analyst valid until 'infinity' login")
    for failure in (wrong, expired, revoked):
        message = str(failure.value)
        assert "\n" not in message and "crm_analyst" in message and "not-the-password" not in message
    assert "password authentication failed" in str(wrong.value)
    assert "expired" in str(expired.value)
    assert "not permitted to log in" in str(revoked.value)
    warehouse.connect(analyst).close()


def test_the_audit_log_records_who_did_what_to_how_many_rows(built):
    loads = query(built, "select object_name, batch_id, rows, database_role from ops.audit_log "
                         "where action = 'load' order by batch_id")
    ledger = query(built, "select object_name, batch_id, rows_published, 'crm_loader' from ops.load_batches "
                          "where status = 'published' order by batch_id")
    assert loads and loads == ledger

    def live_rows() -> int:
        tables = [r[0] for r in query(built, "select tablename from pg_tables where schemaname = 'marts'")]
        return sum(scalar(built, f'select count(*) from marts."{t}"') for t in tables)

    publishes = query(built, "select rows, database_user from ops.audit_log where action = 'publish' order by 1")
    assert len(publishes) == 2 and publishes[-1] == (live_rows(), "postgres")
    marts_publish.rollback("auditor", "checking the trail")
    assert query(built, "select actor, rows, detail->>'reason' from ops.audit_log where action = 'rollback'") == [
        ("auditor", live_rows(), "checking the trail")]
    changes = [r[0] for r in query(built, "select detail->>'change' from ops.audit_log where action = 'role_change'")]
    assert "created schema raw_crm owned by crm_loader" in changes
    assert changes.count("revoked usage on schema marts_previous from crm_analyst") == 2  # a publish, the rollback
    assert scalar(as_role(built, access.ANALYST), "select count(*) from marts.mart_customer_ltv") > 0
    assert refused(as_role(built, access.ANALYST), "select * from marts_previous.mart_customer_ltv limit 1")


def test_airflow_metadata_has_its_own_owner_without_access_to_the_warehouse(embedded):
    assert urlsplit(embedded.airflow_metadata).username == "crm_airflow"
    assert scalar(embedded.warehouse, "select pg_get_userbyid(datdba) from pg_database where datname = 'airflow'") \
        == "crm_airflow"
    assert scalar(embedded.warehouse, "select rolsuper or rolcreaterole from pg_roles where rolname = 'crm_airflow'") \
        is False
    with pytest.raises(WarehouseError, match="permission denied for database"):
        warehouse.connect(settings.with_database(embedded.airflow_metadata, "warehouse"))


def test_the_cli_reports_a_refused_login_in_one_line(built, monkeypatch, capsys):
    monkeypatch.setenv("WAREHOUSE_DSN", as_role(built, access.ANALYST, "wrong-password"))
    assert cli.main(["status"]) == cli.EXIT_SETUP_ERROR
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "password authentication failed" in err and "wrong-password" not in err


def test_generated_passwords_are_private_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMWH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WAREHOUSE_DSN", raising=False)
    first = access.login_passwords()
    assert set(first) == set(access.ROLES) and len(set(first.values())) == 4
    assert all(len(p) >= 24 for p in first.values())
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    for role in access.ROLES:
        assert access.password_file(role).stat().st_mode & 0o777 == 0o600
    assert access.login_passwords() == first


def test_an_owner_without_superuser_is_told_the_grant_it_needs_then_works(embedded):
    """PostgreSQL 16+: roles another user created can only be acted as when granted with SET (here PG 18)."""
    (setup,) = fresh_databases(embedded, "plain_setup")
    with warehouse.connect(setup) as conn:
        warehouse.init_warehouse(conn)  # the roles exist, made by the superuser (as when a DBA made them)
    admin = settings.with_database(embedded.warehouse, "postgres")
    query(admin, "drop database if exists plain_wh with (force)")
    query(admin, "drop role if exists plain_owner")
    query(admin, "create role plain_owner login createrole password 'plain-owner-pw'")
    query(admin, "create database plain_wh owner plain_owner")
    owner_dsn = as_role(settings.with_database(embedded.warehouse, "plain_wh"), "plain_owner", "plain-owner-pw")
    try:
        for role in (access.LOADER, access.TRANSFORMER):
            with pytest.raises(WarehouseError) as told, warehouse.connect(owner_dsn) as conn:
                warehouse.init_warehouse(conn)
            message = str(told.value)
            assert f"Database role {role} exists but plain_owner may not act as it" in message
            query(admin, message.split("must run: ")[1])  # what a DBA would run
        with warehouse.connect(owner_dsn) as conn:
            warehouse.init_warehouse(conn)
            access.assume(conn, access.LOADER)
            conn.execute("create table raw_crm.probe (i int)")
        owners = query(settings.with_database(embedded.warehouse, "plain_wh"),
                       "select pg_get_userbyid(c.relowner) from pg_class c where c.oid = 'raw_crm.probe'::regclass")
        assert owners == [("crm_loader",)]
        with warehouse.connect(owner_dsn) as conn:
            assert access.apply(conn) == []
    finally:
        query(admin, "drop database if exists plain_wh with (force)")
        query(admin, "drop role if exists plain_owner")


def test_the_marts_audit_blocks_personal_data_in_clear(built):
    transform.build_marts_shadow()
    assert marts_audit.audit().passed
    email, customer = query(built, "select p.email, m.customer_id from marts_shadow.mart_customer_contacts m "
                                   "join pii.pii_customer_contacts p using (customer_id) where p.email is not null "
                                   "order by 2 limit 1")[0]
    query(built, "update marts_shadow.mart_customer_contacts set email_masked = %s where customer_id = %s",
          (email, customer))
    result = marts_audit.audit()
    failure = next(f for f in result.failures if f.startswith("mart_customer_contacts"))
    assert not result.passed and "masked or pseudonymised" in failure and str(customer) in failure
    assert email not in " ".join(result.failures)
