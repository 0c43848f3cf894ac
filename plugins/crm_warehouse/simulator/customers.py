"""Customers: sign-ups, latent BG/NBD and gamma-gamma parameters, daily purchase decisions and upkeep."""

import numpy as np

from . import marketing, params, vocab
from .clock import DAY, HOUR, later_same_day, rng_for, season_factor, times_in_day, weekday_factor
from .state import World, stamp

CHANNEL_RATE = np.array([params.CHANNEL_EFFECTS[c][0] for c in vocab.CHANNELS])
CHANNEL_VALUE = np.array([params.CHANNEL_EFFECTS[c][1] for c in vocab.CHANNELS])
CONSUMER = 0


def _mix(mix: dict[str, float]) -> np.ndarray:
    return np.array([mix[c] for c in vocab.CHANNELS]) / sum(mix.values())


def draw_countries(rng: np.random.Generator, n: int) -> np.ndarray:
    w = np.array(vocab.COUNTRY_WEIGHTS)
    return rng.choice(len(w), size=n, p=w / w.sum())


def draw_phones(rng: np.random.Generator, n: int, null_share: float) -> np.ndarray:
    phones = rng.integers(2_000_000_000, 9_999_999_999, n)
    return np.where(rng.random(n) < null_share, 0, phones)


def add_customers(
    world: World,
    rng: np.random.Generator,
    created: np.ndarray,
    *,
    first: np.ndarray,
    last: np.ndarray,
    country: np.ndarray,
    segment: np.ndarray,
    channel: np.ndarray,
    campaign_id: np.ndarray,
    account_id: np.ndarray,
    owner: np.ndarray,
    email_domain: np.ndarray,
) -> np.ndarray:
    """Append customers with their latent behaviour; email_domain -1 = company domain, -2 = no email."""
    n = len(created)
    ids = world.ids("customers", n)
    world.add(
        "customers",
        customer_id=ids,
        account_id=account_id,
        first=first,
        last=last,
        email_domain=email_domain,
        phone=draw_phones(rng, n, 0.1),
        country=country,
        segment=segment,
        status=np.zeros(n, np.int64),
        channel=channel,
        campaign_id=campaign_id,
        owner_user_id=owner,
        signed_up_at=created,
        lam=rng.gamma(params.PURCHASE_R, 1.0 / params.PURCHASE_ALPHA, n) * CHANNEL_RATE[channel],
        p=rng.beta(params.DROPOUT_A, params.DROPOUT_B, n),
        nu=rng.gamma(params.SPEND_Q, 1.0 / params.SPEND_GAMMA, n),
        mu=rng.gamma(params.TICKET_RATE_SHAPE, params.TICKET_RATE_SCALE_PER_YEAR / 365.0, n),
        alive=np.ones(n, bool),
        episode_end=np.full(n, -1, np.int64),
        churn_at=np.full(n, -1, np.int64),
        last_order_at=created.copy(),
        **stamp(created),
    )
    return ids


def step_signups(world: World, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Consumer sign-ups of the day; returns (customer ids, first-order times)."""
    rng = rng_for(world.seed, "customers", d)
    start = world.origin + d * DAY
    n = rng.poisson(
        params.CONSUMER_SIGNUPS_PER_DAY * world.scale * weekday_factor(start) * season_factor(start)
    )
    created = np.sort(times_in_day(rng, start, n, 0.0, 0.97))
    channel = rng.choice(len(vocab.CHANNELS), size=n, p=_mix(params.CONSUMER_CHANNEL_MIX))
    campaign = marketing.pick_campaigns(world, d, rng, channel)
    domain = np.where(rng.random(n) < 0.03, -2, rng.integers(0, len(vocab.CONSUMER_DOMAINS), n))
    ids = add_customers(
        world,
        rng,
        created,
        first=rng.integers(0, len(vocab.FIRST_NAMES), n),
        last=rng.integers(0, len(vocab.LAST_NAMES), n),
        country=draw_countries(rng, n),
        segment=np.zeros(n, np.int64),
        channel=channel,
        campaign_id=campaign,
        account_id=np.zeros(n, np.int64),
        owner=np.zeros(n, np.int64),
        email_domain=domain,
    )
    marketing.attribution_touches(world, rng, campaign, created, ids, np.zeros(n, np.int64), final_type=1)
    return ids, later_same_day(rng, created, world.origin, HOUR)


def step_purchases(world: World, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Repeat purchases of alive customers (BG/NBD). Returns (row indexes, order times)."""
    rng = rng_for(world.seed, "purchases", d)
    c = world.frames["customers"]
    start = world.origin + d * DAY
    troubled = (c["churn_at"] >= 0) & (c["churn_at"] < start)
    c["alive"] = c["alive"] & ~troubled
    alive = np.nonzero(c["alive"] & (c["created_at"] < start))[0]
    buys = alive[rng.random(len(alive)) < -np.expm1(-c["lam"][alive])]
    times = times_in_day(rng, start, len(buys))
    drops = rng.random(len(buys)) < c["p"][buys]
    c["alive"][buys[drops]] = False
    return buys, times


def record_orders(world: World, rows: np.ndarray, times: np.ndarray) -> None:
    """A purchase makes an inactive customer active again."""
    c = world.frames["customers"]
    c["last_order_at"][rows] = np.maximum(c["last_order_at"][rows], times)
    react = rows[c["status"][rows] == 1]
    c["status"][react] = 0
    c["updated_at"][react] = np.maximum(c["updated_at"][react], c["last_order_at"][react])


def step_upkeep(world: World, d: int) -> None:
    """Trouble episodes, the CRM's inactivity rule, profile edits and soft deletes."""
    rng = rng_for(world.seed, "customer_upkeep", d)
    c = world.frames["customers"]
    start = world.origin + d * DAY
    n = len(c)
    alive = c["alive"] & (c["created_at"] < start)
    begins = np.nonzero(alive & (c["episode_end"] < start) & (rng.random(n) < params.EPISODE_HAZARD))[0]
    c["episode_end"][begins] = start + params.EPISODE_DAYS * DAY
    churns = begins[rng.random(len(begins)) < params.EPISODE_CHURN_PROB]
    c["churn_at"][churns] = start + (rng.random(len(churns)) * params.EPISODE_CHURN_WITHIN_DAYS * DAY).astype(
        np.int64
    )

    stale = (c["status"] == 0) & (c["last_order_at"] < start - params.INACTIVE_AFTER_DAYS * DAY)
    stale &= c["deleted_at"] < 0
    c["status"][stale] = 1
    c["updated_at"][stale] = np.maximum(c["updated_at"][stale], start + 2 * HOUR)

    existing = (c["created_at"] < start) & (c["deleted_at"] < 0)
    edits = np.nonzero(existing & (rng.random(n) < params.CUSTOMER_EDIT_HAZARD))[0]
    c["phone"][edits] = draw_phones(rng, len(edits), 0.0)
    c["updated_at"][edits] = np.maximum(c["updated_at"][edits], times_in_day(rng, start, len(edits)))

    gone = np.nonzero(existing & (rng.random(n) < params.CUSTOMER_SOFT_DELETE_HAZARD))[0]
    when = np.maximum(times_in_day(rng, start, len(gone)), c["updated_at"][gone])
    c["deleted_at"][gone] = when
    c["updated_at"][gone] = when
    c["alive"][gone] = False
