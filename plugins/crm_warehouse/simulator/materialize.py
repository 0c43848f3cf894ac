"""End of a run: write what became visible or changed between the previous clock t0 and the new clock t1.

New rows go in with COPY; changed rows that are already in the database are overwritten by key from a
temp table; soft deletes of rows no longer in memory are a set-based UPDATE; advance also hard-deletes a
few leaf rows. Afterwards the simulator forgets rows that can no longer change.
"""

import logging

import numpy as np
import psycopg

from . import lifecycle, params
from .clock import rng_for
from .copy_writer import binary_chunks, copy_in, update_from
from .formats import table_spec
from .schema import KEYS
from .state import World

log = logging.getLogger(__name__)


def assign_deferred_ids(world: World, table: str, t1: int) -> None:
    f = world.frames[table]
    key = KEYS[table]
    due = np.nonzero((f[key] == 0) & (f["created_at"] <= t1))[0]
    order = due[np.lexsort((f["_seq"][due], f["created_at"][due]))]
    f[key][order] = world.ids(table, len(order))


def soft_delete_new(world: World, table: str, t1: int) -> None:
    """Rows created in this run may already be soft-deleted (hazard per day of age)."""
    rate = params.SOFT_DELETE_HAZARD.get(table)
    f = world.frames[table]
    if not rate or not len(f):
        return
    rng = rng_for(world.seed, f"soft_delete_new:{table}", world.day)
    cand = np.nonzero(~f["_in_db"] & (f["created_at"] <= t1) & (f["deleted_at"] < 0))[0]
    age = t1 - f["created_at"][cand]
    hit = cand[rng.random(len(cand)) < -np.expm1(-rate * age / 86_400.0)]
    age = t1 - f["created_at"][hit]
    f["deleted_at"][hit] = f["created_at"][hit] + (rng.random(len(hit)) * age).astype(np.int64)


def soft_delete_old(world: World, table: str, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """Soft deletes of rows already in the database: picked by id; mirrored in memory where present."""
    rate = params.SOFT_DELETE_HAZARD.get(table)
    top = world.db_max_id[table]
    empty = np.zeros(0, np.int64)
    if not rate or not top:
        return empty, empty
    rng = rng_for(world.seed, f"soft_delete_old:{table}", world.day)
    k = rng.binomial(top, -np.expm1(-rate * (t1 - t0) / 86_400.0))
    ids = np.unique(rng.integers(1, top + 1, k))
    when = t0 + 1 + (rng.random(len(ids)) * (t1 - t0 - 1)).astype(np.int64)
    f = world.frames.get(table)
    if f is not None and len(f):
        rows = np.nonzero(np.isin(f[KEYS[table]], ids) & f["_in_db"] & (f["deleted_at"] < 0))[0]
        f["deleted_at"][rows] = when[np.searchsorted(ids, f[KEYS[table]][rows])]
    return ids, when


def write_table(cur: psycopg.Cursor, world: World, table: str, t0: int, t1: int, advancing: bool) -> int:
    """Write one table's news for the run (t0, t1]; returns rows inserted or updated."""
    f = world.frame(table)
    if advancing and table in params.HARD_DELETE_TABLES:
        _hard_delete(cur, world, table)
    if table in lifecycle.DEFERRED_IDS and len(f):
        assign_deferred_ids(world, table, t1)
    soft_delete_new(world, table, t1)
    written = 0
    if advancing:
        written += _soft_delete_in_db(cur, table, *soft_delete_old(world, table, t0, t1))
    if len(f):
        written += _copy_rows(cur, world, table, t0, t1)
        keep = lifecycle.keep_after(table, {k: f[k] for k in ("created_at", *_retention_cols(f))}, t1)
        f.keep(keep)
    return written


def _copy_rows(cur: psycopg.Cursor, world: World, table: str, t0: int, t1: int) -> int:
    """Insert the rows that became visible, overwrite the ones in the database that changed."""
    f = world.frames[table]
    key = KEYS[table]
    visible = f["created_at"] <= t1
    rows = lifecycle.as_of(table, f.take(visible), t1)
    spec = table_spec(world, table)
    columns = [name for name, _ in spec]
    new = ~rows["_in_db"]
    changed = rows["_in_db"] & (rows["updated_at"] > t0)
    written = 0
    if new.any():
        order = np.nonzero(new)[0][np.argsort(rows[key][new], kind="stable")]
        copy_in(cur, f"crm.{table}", columns, binary_chunks({k: v[order] for k, v in rows.items()}, spec))
        written += len(order)
    if changed.any():
        chunks = binary_chunks({k: v[changed] for k, v in rows.items()}, spec)
        written += update_from(cur, table, key, columns, chunks)
    f["_in_db"] = f["_in_db"] | visible
    world.db_max_id[table] = max(world.db_max_id[table], int(f[key][visible].max(initial=0)))
    return written


def _soft_delete_in_db(cur: psycopg.Cursor, table: str, ids: np.ndarray, when: np.ndarray) -> int:
    if not len(ids):
        return 0
    cur.execute(
        f"update crm.{table} t set is_deleted = true, updated_at = greatest(t.updated_at, to_timestamp(d.at))"
        f" from unnest(%s::bigint[], %s::bigint[]) as d(id, at) where t.{KEYS[table]} = d.id"
        " and not t.is_deleted",
        (ids.tolist(), when.tolist()),
    )
    return cur.rowcount


def _retention_cols(f) -> tuple[str, ...]:
    wanted = ("final_at", "ship_at", "complete_at", "cancel_at", "status", "closed_plan")
    return tuple(c for c in wanted if c in f)


def _hard_delete(cur: psycopg.Cursor, world: World, table: str) -> None:
    """~0.05% of the rows already in leaf tables disappear without a trace (delete detection downstream).

    Runs before the table's writes, so nothing inserted or updated in this run is deleted."""
    top = world.db_max_id[table]
    rng = rng_for(world.seed, f"hard_delete:{table}", world.day)
    ids = np.unique(rng.integers(1, top + 1, rng.binomial(top, params.HARD_DELETE_SHARE))) if top else []
    if len(ids):
        key = KEYS[table]
        cur.execute(f"delete from crm.{table} where {key} = any(%s)", (list(map(int, ids)),))
        log.info("hard-deleted %d rows from crm.%s", cur.rowcount, table)
        f = world.frames.get(table)
        if f is not None and len(f):
            f.keep(~np.isin(f[key], ids))
