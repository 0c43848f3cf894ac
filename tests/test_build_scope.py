"""Which part of the core a pipeline build runs (build_scope), decided on a real warehouse's ledger.

test_incremental.py builds two days this way and shows the result equals a full refresh; these cases cover
the decisions around it: the first build, a batch published since, an attempt with another fingerprint that
failed part-way, nothing new, and what the fingerprint covers.
"""

from __future__ import annotations

import pytest

from crm_warehouse import build_scope, transform, warehouse
from tests.conftest import fresh_databases


@pytest.fixture
def wh(embedded):
    (dsn,) = fresh_databases(embedded, "scope_warehouse")
    with warehouse.connect(dsn) as conn:
        warehouse.init_warehouse(conn)
        yield conn


def publish_batch(conn, object_name: str) -> None:
    """A published batch as extract_load records it: in the publishing transaction, with its xid."""
    conn.execute("""insert into ops.load_batches (object_name, run_id, status, watermark_to, published_xid)
                    values (%s, 'test', 'published', clock_timestamp(), pg_current_xact_id()::text::bigint)""",
                 (object_name,))


def succeed(conn, fingerprint: str) -> build_scope.Scope:
    scope = build_scope.core_scope(conn, fingerprint)
    build_scope.record_success(conn, build_scope.record_attempt(conn, scope))
    return scope


def test_the_first_build_builds_everything_then_only_what_changed(wh):
    publish_batch(wh, "orders")
    assert succeed(wh, "v1").changed_objects is None
    assert build_scope.core_scope(wh, "v1").is_empty
    publish_batch(wh, "orders")
    publish_batch(wh, "deals")
    scope = build_scope.core_scope(wh, "v1")
    assert scope.changed_objects == ["deals", "orders"]
    assert scope.selectors == ["source:crm_warehouse.crm.deals+", "source:crm_warehouse.crm.orders+"]


def test_a_batch_published_during_a_build_is_changed_for_the_next(wh):
    succeed(wh, "v1")
    scope = build_scope.core_scope(wh, "v1")
    publish_batch(wh, "customers")  # committed after the scope was taken: the build may not have seen it
    build_scope.record_success(wh, build_scope.record_attempt(wh, scope))
    assert build_scope.core_scope(wh, "v1").changed_objects == ["customers"]


def test_another_fingerprint_since_the_last_success_builds_everything(wh):
    succeed(wh, "v1")
    # an as-of rebuild (other vars) that failed part-way: some tables may hold that date's rows
    build_scope.record_attempt(wh, build_scope.core_scope(wh, "v1-as-of-2026-01-31"))
    publish_batch(wh, "contacts")
    assert build_scope.core_scope(wh, "v1").changed_objects is None
    succeed(wh, "v1")
    assert build_scope.core_scope(wh, "v1").is_empty
    assert build_scope.core_scope(wh, "v2").changed_objects is None  # the project changed


def test_a_new_source_column_counts_as_a_change(wh):
    succeed(wh, "v1")
    wh.execute("""insert into ops.schema_changes (object_name, column_name, column_type, change, run_id)
                  values ('leads', 'score', 'integer', 'added', 'test')""")
    assert build_scope.core_scope(wh, "v1").changed_objects == ["leads"]


def test_the_fingerprint_covers_the_vars_and_every_project_file(tmp_path):
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: p\n")
    (project / "models" / "a.sql").write_text("select 1")
    first = build_scope.project_fingerprint(project, {})
    assert build_scope.project_fingerprint(project, {}) == first
    assert build_scope.project_fingerprint(project, {"as_of_date": "2026-01-31"}) != first
    (project / "models" / "a.sql").write_text("select 2")
    assert build_scope.project_fingerprint(project, {}) != first
    (project / "target").mkdir()
    edited = build_scope.project_fingerprint(project, {})
    (project / "target" / "run_results.json").write_text("{}")  # dbt's output is not an input
    assert build_scope.project_fingerprint(project, {}) == edited
    assert build_scope.project_fingerprint(transform.project_dir(), transform.build_vars()) != \
        build_scope.project_fingerprint(transform.project_dir(), transform.build_vars("2026-01-31"))
