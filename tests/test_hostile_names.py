"""Names from a source schema or from configuration reach SQL only as quoted identifiers: hostile column
names in the CRM source load like any other new column; hostile names in a suite are refused at once."""

from __future__ import annotations

import json
import shutil

import pytest

from crm_warehouse import extract_load, objects, simulator, warehouse
from crm_warehouse.errors import WarehouseError
from tests.conftest import fresh_databases, query, scalar

HOSTILE = ['x"; drop table raw_crm.teams; --', "Robert'); DROP TABLE ops.load_batches;--", "semi;colon", "Ünï code"]


@pytest.fixture(scope="module")
def loaded(embedded):
    source, wh = fresh_databases(embedded, "hostile_crm", "hostile_wh")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", wh)
        mp.setenv("CRM_SOURCE_DSN", source)
        simulator.simulate(source, scale=0.01, seed=5, quiet=True)
        with warehouse.connect(wh) as conn:  # as crm_ingest's plan_run does
            warehouse.init_warehouse(conn)
        for name in ("teams", "users"):
            extract_load.load_object(name, "initial")
        yield source, wh


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_hostile_source_columns_are_added_and_loaded_as_plain_columns(loaded):
    source, wh = loaded
    teams = scalar(source, "select count(*) from crm.teams")
    for i, name in enumerate(HOSTILE):
        query(source, f"alter table crm.teams add column {quoted(name)} text")
        query(source, f"update crm.teams set {quoted(name)} = 'value {i}', updated_at = now() - interval '1 second'")
    result = extract_load.load_object("teams", "hostile")
    assert (result.status, result.rows_published) == ("published", teams)
    for schema in ("landing", "raw_crm", "quarantine"):
        columns = {r[0] for r in query(wh, "select column_name from information_schema.columns "
                                           "where table_schema = %s and table_name = 'teams'", (schema,))}
        assert set(HOSTILE) <= columns, schema
    for i, name in enumerate(HOSTILE):
        assert query(wh, f"select distinct {quoted(name)} from raw_crm.teams where _batch_id = %s",
                     (result.batch_id,)) == [(f"value {i}",)]
    assert {r[0] for r in query(wh, "select column_name from ops.schema_changes where object_name = 'teams'")} \
        == set(HOSTILE)
    assert scalar(wh, "select count(*) from ops.load_batches") > 0  # still there
    assert scalar(wh, "select count(*) from raw_crm.teams") == 2 * teams


@pytest.mark.parametrize("field, value", [
    ("object", "teams; drop table ops.load_batches; --"),
    ("key", 'team_id" or 1=1 --'),
    ("references", {"manager_id": "users.user_id); drop table x; --"}),
])
def test_hostile_names_in_a_suite_are_refused_with_the_file_and_field(tmp_path, monkeypatch, field, value):
    for path in objects.expectations_dir().glob("crm_*.json"):
        shutil.copy(path, tmp_path)
    suite = json.loads((tmp_path / "crm_teams.json").read_text())
    suite["meta"][field] = value
    (tmp_path / "crm_teams.json").write_text(json.dumps(suite))
    monkeypatch.setattr(objects, "expectations_dir", lambda: tmp_path)
    objects.all_objects.cache_clear()
    try:
        with pytest.raises(WarehouseError) as refused:
            objects.all_objects()
    finally:
        objects.all_objects.cache_clear()
    message = str(refused.value)
    assert "crm_teams.json" in message and f"meta.{field}" in message and "not a plain identifier" in message
