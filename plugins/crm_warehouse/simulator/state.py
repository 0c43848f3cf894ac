"""The simulated world between runs: the clock, id counters and the live rows, persisted in crm.sim_state.

Live rows are the ones that may still change (open deals, running subscriptions, unfinished orders, all
customers with their latent purchase parameters, ...) plus planned rows that are not visible yet. Rows
that can no longer change are only in the database.
"""

from dataclasses import dataclass, field

import numpy as np
import psycopg

from .clock import DAY, seconds_to_datetime
from .columns import empty_frame
from .frame import Frame, dumps, loads
from .schema import TABLES

FORMAT_VERSION = 1


@dataclass
class World:
    seed: int
    scale: float
    origin: int  # epoch seconds of day 0
    day: int  # the next day to simulate; the clock is origin + day * DAY
    frames: dict[str, Frame] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=lambda: {t: 1 for t in TABLES})
    db_max_id: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # fx rates, current prices, ...

    @property
    def now(self) -> int:
        return self.origin + self.day * DAY

    def ids(self, table: str, n: int) -> np.ndarray:
        start = self.next_id[table]
        self.next_id[table] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def frame(self, table: str) -> Frame:
        if table not in self.frames:
            self.frames[table] = empty_frame(table)
        return self.frames[table]

    def __post_init__(self) -> None:
        for table in TABLES:
            self.frame(table)

    def add(self, table: str, **cols: np.ndarray) -> None:
        self.frame(table).append(**cols)


def _counters(world: World) -> dict[str, np.ndarray]:
    return {
        "next_id": np.array([world.next_id[t] for t in TABLES], dtype=np.int64),
        "db_max_id": np.array([world.db_max_id[t] for t in TABLES], dtype=np.int64),
    }


def save(conn: psycopg.Connection, world: World) -> None:
    blob = dumps(world.frames, {**world.arrays, **_counters(world)})
    conn.execute("delete from crm.sim_state")
    conn.execute(
        "insert into crm.sim_state (seed, scale, started_at, sim_now, days_simulated, format_version, state)"
        " values (%s, %s, %s, %s, %s, %s, %s)",
        (
            world.seed,
            world.scale,
            seconds_to_datetime(world.origin),
            seconds_to_datetime(world.now),
            world.day,
            FORMAT_VERSION,
            blob,
        ),
    )


def load(conn: psycopg.Connection) -> World:
    row = conn.execute(
        "select seed, scale, extract(epoch from started_at)::bigint, days_simulated, format_version, state"
        " from crm.sim_state"
    ).fetchone()
    if row is None:
        raise RuntimeError("crm.sim_state is empty: run simulate() before advance()")
    seed, scale, origin, day, version, blob = row
    if version != FORMAT_VERSION:
        raise RuntimeError(
            f"crm.sim_state has format {version}, this simulator writes {FORMAT_VERSION}: re-run simulate()"
        )
    frames, arrays = loads(bytes(blob))
    next_id, db_max = arrays.pop("next_id"), arrays.pop("db_max_id")
    world = World(
        seed=int(seed), scale=float(scale), origin=int(origin), day=int(day), frames=frames, arrays=arrays
    )
    world.next_id = {t: int(v) for t, v in zip(TABLES, next_id, strict=False)}
    world.db_max_id = {t: int(v) for t, v in zip(TABLES, db_max, strict=False)}
    return world


def stamp(created: np.ndarray) -> dict[str, np.ndarray]:
    """The bookkeeping columns every simulated row carries."""
    created = np.asarray(created, dtype=np.int64)
    n = len(created)
    return {
        "created_at": created,
        "updated_at": created.copy(),
        "deleted_at": np.full(n, -1, np.int64),
        "_in_db": np.zeros(n, dtype=bool),
    }


def next_seq(world: World, table: str, n: int) -> np.ndarray:
    """Planning order for rows whose ids are assigned only when they become visible."""
    seq = world.arrays.setdefault("seq", np.zeros(len(TABLES), dtype=np.int64))
    i = TABLES.index(table)
    start = int(seq[i])
    seq[i] = start + n
    return np.arange(start, start + n, dtype=np.int64)
