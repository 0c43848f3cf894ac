"""simulate() and advance(): step the world day by day, then write the result in one transaction."""

import contextlib
import datetime as dt
import logging
import sys
import time

import numpy as np
import psycopg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import (
    customers,
    marketing,
    materialize,
    orders,
    reference,
    sales,
    schema,
    state,
    subscriptions,
    support,
)
from .clock import DAY, DEFAULT_END_DATE, date_to_seconds
from .state import World

log = logging.getLogger(__name__)


def step_day(world: World, d: int) -> None:
    """One simulated day. The order matters: later steps use what earlier ones created."""
    reference.step_fx(world, d)
    reference.step_prices(world, d)
    marketing.step_campaigns(world, d)
    sales.step_leads(world, d)
    sales.step_qualified(world, d)
    sales.step_upsell(world, d)
    b2b_ids, b2b_times = sales.step_closed_won(world, d)
    consumer_ids, consumer_times = customers.step_signups(world, d)
    repeat_rows, repeat_times = customers.step_purchases(world, d)
    cust = world.frames["customers"]
    new_rows = np.searchsorted(cust["customer_id"], np.concatenate([b2b_ids, consumer_ids]))
    rows = np.concatenate([new_rows, repeat_rows])
    times = np.concatenate([b2b_times, consumer_times, repeat_times])
    customers.record_orders(world, rows, times)
    orders.place_orders(world, d, rows, times)
    customers.step_upkeep(world, d)
    support.step_tickets(world, d)
    sales.step_account_management(world, d)
    marketing.step_touches(world, d)
    marketing.step_sessions(world, d)
    subscriptions.step_subscriptions(world, d)


def _progress(quiet: bool) -> Progress | contextlib.nullcontext:
    if quiet or not sys.stderr.isatty():
        return contextlib.nullcontext()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def _run(
    conn: psycopg.Connection, world: World, days: int, quiet: bool, restore_keys: list[str] | None = None
) -> dict[str, int]:
    advancing = restore_keys is None
    t0 = world.now
    began = time.perf_counter()
    with _progress(quiet) as bar:
        task = bar.add_task("simulating days", total=days) if bar else None
        for _ in range(days):
            step_day(world, world.day)
            world.day += 1
            if bar:
                bar.advance(task)
        t1 = world.now
        counts = {}
        write = bar.add_task("writing tables", total=len(schema.TABLES)) if bar else None
        with conn.cursor() as cur:
            for table in schema.TABLES:
                tic = time.perf_counter()
                counts[table] = materialize.write_table(cur, world, table, t0, t1, advancing)
                log.debug("crm.%s: %d rows in %.2f s", table, counts[table], time.perf_counter() - tic)
                if bar:
                    bar.advance(write)
        if not advancing:
            schema.create_indexes(conn, restore_keys)
        state.save(conn, world)
    elapsed = time.perf_counter() - began
    total = sum(counts.values())
    log.info(
        "simulator: %d rows in %.1f s (%.0f rows/s), clock now %s",
        total,
        elapsed,
        total / max(elapsed, 1e-9),
        dt.datetime.fromtimestamp(world.now, dt.UTC).isoformat(),
    )
    return counts


def simulate(
    dsn: str,
    *,
    scale: float = 1.0,
    seed: int = 42,
    days: int = 730,
    end_date: dt.date = DEFAULT_END_DATE,
    quiet: bool = False,
) -> dict[str, int]:
    """Drop and recreate schema crm, then simulate `days` days of history ending at end_date 00:00 UTC.

    Returns the number of rows written per table.
    """
    if scale <= 0 or days <= 0 or seed < 0:
        raise ValueError("scale and days must be positive and seed non-negative")
    world = World(seed=seed, scale=float(scale), origin=date_to_seconds(end_date) - days * DAY, day=0)
    reference.init(world)
    with psycopg.connect(dsn) as conn:
        conn.execute("set time zone 'UTC'")
        restore_keys = schema.recreate(conn)
        return _run(conn, world, days, quiet, restore_keys)


def advance(dsn: str, *, days: int = 1, quiet: bool = False) -> dict[str, int]:
    """Move the simulated clock forward: new rows, updates, soft deletes and a few hard deletes.

    Returns the number of rows inserted or updated per table.
    """
    if days <= 0:
        raise ValueError("days must be positive")
    with psycopg.connect(dsn) as conn:
        conn.execute("set time zone 'UTC'")
        conn.execute("lock table crm.sim_state in exclusive mode")
        world = state.load(conn)
        return _run(conn, world, days, quiet)
