"""B2B subscriptions: annual terms; at term end a renewal, expansion or contraction is a new row pointing
at the previous one, churn ends the chain; a few are cancelled mid-term."""

import numpy as np

from . import params
from .clock import DAY, rng_for, times_in_day
from .state import World, stamp

ACTIVE, ENDED, CANCELLED = range(3)
OUTCOMES = tuple(params.RENEWAL_MIX)
OUTCOME_P = np.array([params.RENEWAL_MIX[k] for k in OUTCOMES])


def start(
    world: World,
    started: np.ndarray,
    account_id: np.ndarray,
    customer_id: np.ndarray,
    product_id: np.ndarray,
    mrr: np.ndarray,
    currency: np.ndarray,
    previous: np.ndarray,
) -> None:
    n = len(started)
    if n:
        world.add(
            "subscriptions",
            subscription_id=world.ids("subscriptions", n),
            account_id=account_id,
            customer_id=customer_id,
            product_id=product_id,
            previous_subscription_id=previous,
            mrr=mrr.astype(np.int64),
            currency=currency,
            started_at=started,
            term_end=started + params.TERM_DAYS * DAY,
            ended_at=np.full(n, -1, np.int64),
            status=np.zeros(n, np.int64),
            **stamp(started),
        )


def step_subscriptions(world: World, d: int) -> None:
    s = world.frames.get("subscriptions")
    if s is None or not len(s):
        return
    rng = rng_for(world.seed, "subscriptions", d)
    begin, end = world.origin + d * DAY, world.origin + (d + 1) * DAY
    active = s["status"] == ACTIVE
    cancel = np.nonzero(
        active
        & (s["started_at"] < begin)
        & (s["term_end"] >= end)
        & (rng.random(len(s)) < params.CANCEL_HAZARD)
    )[0]
    when = times_in_day(rng, begin, len(cancel))
    _end(s, cancel, when, CANCELLED)

    due = np.nonzero(active & (s["term_end"] >= begin) & (s["term_end"] < end))[0]
    if not len(due):
        return
    outcome = rng.choice(len(OUTCOMES), size=len(due), p=OUTCOME_P)
    factor = np.select(
        [outcome == 1, outcome == 2],
        [rng.uniform(1.15, 1.6, len(due)), rng.uniform(0.5, 0.85, len(due))],
        1.0,
    )
    ended = s["term_end"][due]
    _end(s, due, ended, ENDED)
    go_on = outcome != OUTCOMES.index("churn")
    rows = due[go_on]
    start(
        world,
        ended[go_on],
        s["account_id"][rows],
        s["customer_id"][rows],
        s["product_id"][rows],
        np.round(s["mrr"][rows] * factor[go_on]),
        s["currency"][rows],
        s["subscription_id"][rows],
    )


def _end(s, rows: np.ndarray, when: np.ndarray, status: int) -> None:
    s["status"][rows] = status
    s["ended_at"][rows] = when
    s["updated_at"][rows] = np.maximum(s["updated_at"][rows], when)
