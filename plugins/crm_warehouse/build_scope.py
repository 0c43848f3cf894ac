"""Which part of the core a pipeline build must run: only what is downstream of the CRM objects that changed.

After `advance --days 1` six reference objects (products, price list, pipeline stages, teams, users, campaigns)
usually have no new batch; their staging models, dimensions and data tests (~70 of ~300 dbt nodes) would
rebuild the same rows. A build selects `source:crm.<object>+` for the objects with a batch published since
the last core build that succeeded, and builds everything when there is no such build, or when a build since
then (even one that failed part-way, having rewritten some tables) or this one has another fingerprint: the
project's files, its vars (an as-of rebuild) and the dbt versions. Every attempt is kept in ops.core_builds;
builds hold an advisory lock, so two never interleave their reads and writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

PROJECT_PARTS = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml", "selectors.yml",
                 "models", "macros", "tests", "seeds", "snapshots", "dbt_packages")
LOCK = "crmwh.core_build"


@dataclass(frozen=True)
class Scope:
    fingerprint: str
    from_xid: int  # batches published by transactions below it are visible to the build
    started_at: datetime
    changed_objects: list[str] | None  # None: build everything

    @property
    def selectors(self) -> list[str]:
        return [f"source:crm_warehouse.crm.{name}+" for name in self.changed_objects or []]

    @property
    def is_empty(self) -> bool:
        return self.changed_objects == []


def project_fingerprint(project_dir: Path, dbt_vars: dict) -> str:
    """A hash of every file dbt reads to build the models, of the vars they are built with and of dbt's versions."""
    versions = {name: metadata.version(name) for name in ("dbt-core", "dbt-postgres", "dbt-adapters")}
    digest = hashlib.sha256(json.dumps([dbt_vars, versions], sort_keys=True).encode())
    for part in PROJECT_PARTS:
        root = project_dir / part
        for path in sorted(root.rglob("*") if root.is_dir() else [root]):
            if path.is_file():
                digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@contextmanager
def exclusive(wh: psycopg.Connection) -> Iterator[None]:
    """One core build at a time (the DAG, `crmwh rebuild`, a benchmark): held on `wh` for the whole build."""
    wh.execute("select pg_advisory_lock(hashtext(%s))", (LOCK,))
    try:
        yield
    finally:
        wh.execute("select pg_advisory_unlock(hashtext(%s))", (LOCK,))


def core_scope(wh: psycopg.Connection, fingerprint: str) -> Scope:
    from_xid, started_at = wh.execute(
        "select pg_snapshot_xmin(pg_current_snapshot())::text::bigint, clock_timestamp()").fetchone()
    last = wh.execute("select build_id, from_xid, started_at from ops.core_builds where succeeded "
                      "order by build_id desc limit 1").fetchone()
    if last is None:
        log.info("Core build: every model (no core build has succeeded yet)")
        return Scope(fingerprint, from_xid, started_at, None)
    other = wh.execute("select count(*) from ops.core_builds where build_id >= %s and fingerprint <> %s",
                       (last[0], fingerprint)).fetchone()[0]
    if other:
        log.info("Core build: every model (the project, its vars or dbt changed since the last core build)")
        return Scope(fingerprint, from_xid, started_at, None)
    return Scope(fingerprint, from_xid, started_at, changed_objects(wh, last[1], last[2]))


def changed_objects(wh: psycopg.Connection, since_xid: int, since_time: datetime) -> list[str]:
    """Objects with a batch published at or above since_xid (maybe not seen by that build) or a new source
    column recorded since it started."""
    return [name for (name,) in wh.execute("""
        select object_name from ops.load_batches where status = 'published' and published_xid >= %s
        union
        select object_name from ops.schema_changes where detected_at >= %s
        order by 1""", (since_xid, since_time)).fetchall()]


def record_attempt(wh: psycopg.Connection, scope: Scope) -> int:
    """Before the build writes anything: a build that fails part-way may have rewritten tables all the same."""
    wh.execute("delete from ops.core_builds where started_at < clock_timestamp() - interval '30 days' "
               "and build_id < (select max(build_id) from ops.core_builds where succeeded)")
    return wh.execute("insert into ops.core_builds (fingerprint, from_xid, started_at, selected_objects) "
                      "values (%s, %s, %s, %s) returning build_id",
                      (scope.fingerprint, scope.from_xid, scope.started_at, scope.changed_objects)).fetchone()[0]


def record_success(wh: psycopg.Connection, build_id: int) -> None:
    wh.execute("update ops.core_builds set succeeded = true, finished_at = clock_timestamp() where build_id = %s",
               (build_id,))
