"""Campaigns, their daily spend, marketing touches and web sessions."""

import numpy as np

from . import params, vocab
from .clock import DAY, HOUR, days_since_epoch, rng_for, times_in_day, weekday_factor
from .state import World, stamp

DAILY_BUDGET_USD = {1: 900.0, 2: 700.0, 3: 150.0, 5: 400.0}  # by channel code, at scale 1
COST_PER_MILLE = {1: 12.0, 2: 7.0, 3: 2.0, 5: 9.0}
CLICK_RATE = {1: 0.03, 2: 0.012, 3: 0.04, 5: 0.02}
UTM_BY_CHANNEL = {1: (0, 1), 2: (2, 3), 3: (4,), 5: (5,)}


def slots_per_channel(scale: float) -> int:
    return max(1, round(2 * np.sqrt(scale)))


def step_campaigns(world: World, d: int) -> None:
    """Each channel runs a few campaign slots back to back; a free slot starts a new campaign."""
    rng = rng_for(world.seed, "campaigns", d)
    n_slots = slots_per_channel(world.scale)
    channels = np.array(vocab.CAMPAIGN_CHANNELS)
    free_from = world.arrays.setdefault("campaign_free_from", np.zeros((len(channels), n_slots), np.int64))
    ch_idx, slot = np.nonzero(free_from <= d)
    if len(ch_idx):
        n = len(ch_idx)
        start = world.origin + d * DAY
        duration = rng.integers(30, 91, n)
        channel = channels[ch_idx]
        daily = np.array([DAILY_BUDGET_USD[c] for c in channel]) * world.scale * rng.uniform(0.6, 1.5, n)
        currency = rng.choice([0, 1, 2], size=n, p=[0.7, 0.2, 0.1])
        budget = np.round(daily * duration / world.arrays["fx"][currency]) * 100
        world.add(
            "campaigns",
            campaign_id=world.ids("campaigns", n),
            channel=channel,
            start_date=np.full(n, days_since_epoch(start)),
            end_day=days_since_epoch(start) + duration,
            budget=budget.astype(np.int64),
            currency=currency,
            **stamp(start + rng.integers(HOUR, 9 * HOUR, n)),
        )
        free_from[ch_idx, slot] = d + duration + rng.integers(0, 8, n)
    _spend(world, d)


def active_campaigns(world: World, d: int) -> tuple[np.ndarray, np.ndarray]:
    c = world.frames["campaigns"]
    today = days_since_epoch(world.origin + d * DAY)
    live = (c["start_date"] <= today) & (c["end_day"] > today) & (c["deleted_at"] < 0)
    return c["campaign_id"][live], c["channel"][live]


def pick_campaigns(world: World, d: int, rng: np.random.Generator, channels: np.ndarray) -> np.ndarray:
    """A running campaign of each given acquisition channel (0 when the channel has none)."""
    ids, chans = active_campaigns(world, d)
    out = np.zeros(len(channels), np.int64)
    for ch in np.unique(channels):
        rows = np.nonzero(channels == ch)[0]
        pool = ids[chans == ch]
        if len(pool):
            out[rows] = pool[rng.integers(0, len(pool), len(rows))]
    return out


def _spend(world: World, d: int) -> None:
    rng = rng_for(world.seed, "campaign_spend_daily", d)
    c = world.frames["campaigns"]
    today = days_since_epoch(world.origin + d * DAY)
    live = np.nonzero((c["start_date"] <= today) & (c["end_day"] > today))[0]
    n = len(live)
    if not n:
        return
    duration = c["end_day"][live] - c["start_date"][live]
    amount = np.round(c["budget"][live] / duration * rng.uniform(0.6, 1.4, n)).astype(np.int64)
    usd = amount / 100.0 * world.arrays["fx"][c["currency"][live]]
    channel = c["channel"][live]
    cpm = np.array([COST_PER_MILLE[x] for x in channel])
    ctr = np.array([CLICK_RATE[x] for x in channel])
    impressions = rng.poisson(usd / cpm * 1000.0)
    clicks = rng.binomial(impressions, ctr)
    start = world.origin + d * DAY
    world.add(
        "campaign_spend_daily",
        campaign_spend_id=world.ids("campaign_spend_daily", n),
        campaign_id=c["campaign_id"][live],
        spend_date=np.full(n, today),
        amount=amount,
        currency=c["currency"][live],
        impressions=impressions,
        clicks=clicks,
        **stamp(np.full(n, start + DAY - 1800)),
    )


def add_touches(
    world: World,
    rng: np.random.Generator,
    campaign_id: np.ndarray,
    customer_id: np.ndarray,
    lead_id: np.ndarray,
    touch_type: np.ndarray,
    touched_at: np.ndarray,
    created: np.ndarray,
) -> None:
    n = len(campaign_id)
    if n:
        world.add(
            "campaign_touches",
            touch_id=world.ids("campaign_touches", n),
            campaign_id=campaign_id,
            customer_id=customer_id,
            lead_id=lead_id,
            touch_type=touch_type,
            touched_at=touched_at,
            **stamp(created),
        )


def attribution_touches(
    world: World,
    rng: np.random.Generator,
    campaign_id: np.ndarray,
    created: np.ndarray,
    customer_id: np.ndarray,
    lead_id: np.ndarray,
    final_type: int,
) -> None:
    """Touches in the 14 days before an acquisition, recorded when the lead or customer is created."""
    has = np.nonzero(campaign_id > 0)[0]
    k = 1 + rng.poisson(2.0, len(has))
    rows = np.repeat(has, k)
    last = np.cumsum(k) - 1
    touched = created[rows] - rng.integers(0, 14 * DAY, len(rows))
    touched[last] = created[has]
    ttype = rng.choice([0, 1], size=len(rows), p=[0.7, 0.3])
    ttype[last] = final_type
    add_touches(
        world, rng, campaign_id[rows], customer_id[rows], lead_id[rows], ttype, touched, created[rows]
    )


def step_touches(world: World, d: int) -> None:
    """Ongoing campaign touches on existing customers (opens, clicks, impressions)."""
    rng = rng_for(world.seed, "campaign_touches", d)
    ids, chans = active_campaigns(world, d)
    cust = world.frames["customers"]
    start = world.origin + d * DAY
    pool = np.nonzero(cust["alive"] & (cust["created_at"] < start))[0]
    if not len(ids) or not len(pool):
        return
    n = rng.poisson(params.MARKETING_TOUCHES_PER_DAY * world.scale * weekday_factor(start))
    pick = rng.integers(0, len(ids), n)
    who = pool[rng.integers(0, len(pool), n)]
    is_email = chans[pick] == 3
    ttype = np.where(
        is_email, rng.choice([2, 1], size=n, p=[0.85, 0.15]), rng.choice([0, 1], size=n, p=[0.9, 0.1])
    )
    when = times_in_day(rng, start, n)
    add_touches(world, rng, ids[pick], cust["customer_id"][who], np.zeros(n, np.int64), ttype, when, when)


def add_sessions(
    world: World,
    rng: np.random.Generator,
    customer_id: np.ndarray,
    anon: np.ndarray,
    started: np.ndarray,
    ended: np.ndarray,
    landing: np.ndarray,
    campaign_id: np.ndarray,
    utm: np.ndarray,
) -> None:
    n = len(customer_id)
    if not n:
        return
    pages = 1 + rng.geometric(0.3, n)
    device = rng.choice(3, size=n, p=[0.55, 0.38, 0.07])
    world.add(
        "web_sessions",
        session_id=world.ids("web_sessions", n),
        customer_id=customer_id,
        anon=anon,
        started_at=started,
        ended_at=ended,
        page_views=pages,
        landing_page=landing,
        utm=utm,
        campaign_id=campaign_id,
        device=device,
        **stamp(ended),
    )


def customer_anon_ids(customer_id: np.ndarray) -> np.ndarray:
    """A stable cookie id per customer (the same browser across sessions)."""
    return (customer_id * 2_654_435_761 + 97_531) % (1 << 40)


def session_window(
    rng: np.random.Generator, anchor: np.ndarray, day_start: int
) -> tuple[np.ndarray, np.ndarray]:
    """A session around an instant, kept inside its day so it is complete when recorded."""
    started = np.maximum(anchor - rng.integers(60, 1800, len(anchor)), day_start)
    ended = np.minimum(np.maximum(anchor, started) + rng.integers(30, 900, len(anchor)), day_start + DAY - 1)
    return started, ended


def utm_for(rng: np.random.Generator, campaign_channel: np.ndarray) -> np.ndarray:
    out = np.full(len(campaign_channel), -1, np.int64)
    for ch, sources in UTM_BY_CHANNEL.items():
        rows = np.nonzero(campaign_channel == ch)[0]
        out[rows] = np.array(sources)[rng.integers(0, len(sources), len(rows))]
    return out


def step_sessions(world: World, d: int) -> None:
    """Browsing sessions of alive customers and anonymous visitors."""
    rng = rng_for(world.seed, "web_sessions", d)
    start = world.origin + d * DAY
    cust = world.frames["customers"]
    alive = np.nonzero(cust["alive"] & (cust["created_at"] < start))[0]
    browse = alive[rng.random(len(alive)) < 1.0 - np.exp(-2.0 * cust["lam"][alive])]
    n_anon = rng.poisson(params.ANONYMOUS_SESSIONS_PER_DAY * world.scale * weekday_factor(start))
    customer_id = np.concatenate([cust["customer_id"][browse], np.zeros(n_anon, np.int64)])
    anon = np.concatenate(
        [customer_anon_ids(cust["customer_id"][browse]), rng.integers(1 << 40, 1 << 52, n_anon)]
    )
    n = len(customer_id)
    started, ended = session_window(rng, times_in_day(rng, start, n, 0.02, 0.98), start)
    ids, chans = active_campaigns(world, d)
    campaign = np.zeros(n, np.int64)
    from_campaign = np.nonzero(rng.random(n) < 0.35)[0] if len(ids) else np.zeros(0, np.int64)
    pick = rng.integers(0, max(len(ids), 1), len(from_campaign))
    campaign[from_campaign] = ids[pick] if len(ids) else 0
    channel = np.zeros(n, np.int64)
    channel[from_campaign] = chans[pick] if len(ids) else 0
    landing = rng.choice(
        len(vocab.LANDING_PAGES), size=n, p=[0.3, 0.12, 0.18, 0.15, 0.02, 0.1, 0.06, 0.05, 0.02]
    )
    add_sessions(world, rng, customer_id, anon, started, ended, landing, campaign, utm_for(rng, channel))
