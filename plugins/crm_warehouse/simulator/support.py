"""Support tickets: a baseline rate per customer plus bursts during trouble episodes (planted effect 2)."""

import numpy as np

from . import params, vocab
from .clock import DAY, HOUR, rng_for, times_in_day
from .state import World, stamp

SCORES = np.arange(1, 6)
SCORE_CALM = np.array([0.04, 0.06, 0.15, 0.35, 0.40])
SCORE_TROUBLE = np.array([0.25, 0.25, 0.25, 0.15, 0.10])


def step_tickets(world: World, d: int) -> None:
    rng = rng_for(world.seed, "support_tickets", d)
    c = world.frames["customers"]
    start = world.origin + d * DAY
    # customers who stopped buying still open tickets, and keep complaining until their episode ends
    rows = np.nonzero((c["deleted_at"] < 0) & (c["created_at"] < start))[0]
    trouble = c["episode_end"][rows] > start
    rate = c["mu"][rows] + np.where(trouble, params.EPISODE_EXTRA_TICKETS / params.EPISODE_DAYS, 0.0)
    k = rng.poisson(rate)
    who = np.repeat(rows, k)
    hot = np.repeat(trouble, k)
    n = len(who)
    if not n:
        return
    opened = times_in_day(rng, start, n)
    priority = np.where(
        hot, rng.choice(4, size=n, p=[0.1, 0.4, 0.35, 0.15]), rng.choice(4, size=n, p=[0.3, 0.5, 0.15, 0.05])
    )
    pending = np.where(rng.random(n) < 0.6, opened + rng.integers(HOUR, DAY, n), -1)
    solved = opened + (rng.gamma(2.0, 1.5, n) * DAY / (1 + priority * 0.3)).astype(np.int64) + HOUR
    solved = np.maximum(solved, pending + HOUR)
    closed = solved + 3 * DAY
    rated = rng.random(n) < 0.55
    score = np.where(
        hot, rng.choice(SCORES, size=n, p=SCORE_TROUBLE), rng.choice(SCORES, size=n, p=SCORE_CALM)
    )
    world.add(
        "support_tickets",
        ticket_id=world.ids("support_tickets", n),
        customer_id=c["customer_id"][who],
        opened_at=opened,
        pending_at=pending,
        solved_at=solved,
        closed_plan=closed,
        priority=priority,
        category=rng.integers(0, len(vocab.TICKET_CATEGORIES), n),
        score=np.where(rated, score, -1),
        **stamp(opened),
    )
