"""Compatibility: the same load and dbt build against another PostgreSQL given by DSN.

Uses the machine's server on 127.0.0.1:5432 (PostgreSQL 15 here) when it is there; the embedded
server is PostgreSQL 18, so this run covers the oldest version the project supports.
"""

from __future__ import annotations

import uuid

import pytest

from crm_warehouse import extract_load, objects, simulator, status, transform, warehouse
from tests.conftest import local_server_dsn, query, scalar

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def local_server(monkeypatch_module):
    admin = local_server_dsn()
    if admin is None:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432 to check compatibility against")
    suffix = uuid.uuid4().hex[:8]
    names = {"warehouse": f"crmwh_compat_wh_{suffix}", "source": f"crmwh_compat_crm_{suffix}"}
    for name in names.values():
        query(admin, f'create database "{name}"')
    warehouse_dsn = admin.rsplit("/", 1)[0] + "/" + names["warehouse"]
    source_dsn = admin.rsplit("/", 1)[0] + "/" + names["source"]
    monkeypatch_module.setenv("WAREHOUSE_DSN", warehouse_dsn)
    monkeypatch_module.setenv("CRM_SOURCE_DSN", source_dsn)
    yield {"warehouse": warehouse_dsn, "source": source_dsn, "version": scalar(admin, "show server_version_num")}
    for name in names.values():
        query(admin, f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_server_is_a_supported_version(local_server):
    assert int(local_server["version"]) >= 150000


def test_load_and_build_on_the_local_server(local_server):
    simulator.simulate(local_server["source"], scale=0.01, seed=3, quiet=True)
    run_id = "compat-run"
    with warehouse.connect(local_server["warehouse"]) as conn:  # as crm_ingest's plan_run does
        warehouse.init_warehouse(conn)
    for tier in objects.load_tiers():
        for name in tier:
            result = extract_load.load_object(name, run_id)
            assert result.status == "published", (name, result)
    for name in objects.all_objects():
        assert scalar(local_server["warehouse"], f"select count(*) from raw_crm.{name}") == scalar(
            local_server["source"], f"select count(*) from crm.{name}"
        ), name
    transform.build_all()
    counts = status.mart_counts(local_server["warehouse"])
    assert counts["mart_customer_ltv"] > 0 and counts["mart_funnel_conversion"] > 0
