"""Slowly changing reference data: teams, users, products, price lists, pipeline stages, FX rates."""

import datetime as dt

import numpy as np

from . import vocab
from .clock import DAY, EPOCH, HOUR, days_since_epoch, rng_for
from .state import World, stamp

STAGES = (  # name, order, win probability, is_closed, is_won
    ("prospecting", 1, 0.10, False, False),
    ("qualification", 2, 0.20, False, False),
    ("demo", 3, 0.35, False, False),
    ("proposal", 4, 0.50, False, False),
    ("negotiation", 5, 0.70, False, False),
    ("closed_won", 6, 1.00, True, True),
    ("closed_lost", 7, 0.00, True, False),
)
PROSPECTING, QUALIFICATION, DEMO, PROPOSAL, NEGOTIATION, WON, LOST = range(1, 8)

FX_START = np.array([1.0, 1.085, 1.27, 0.74, 0.66])
FX_SIGMA = 0.004
FX_REVERSION = 0.003


def user_count(scale: float) -> int:
    return 8 + round(50 * scale)


def init(world: World) -> None:
    rng = rng_for(world.seed, "reference", 0)
    long_ago = world.origin - 1000 * DAY
    n_teams = len(vocab.TEAMS)
    world.add(
        "teams",
        team_id=world.ids("teams", n_teams),
        name=np.arange(n_teams),
        **stamp(long_ago + np.arange(n_teams) * DAY),
    )
    _init_users(world, rng)
    n_products = len(vocab.PRODUCTS)
    world.add(
        "products",
        product_id=world.ids("products", n_products),
        code=np.arange(n_products),
        is_active=np.ones(n_products, bool),
        **stamp(long_ago + np.arange(n_products) * HOUR),
    )
    n_stages = len(STAGES)
    world.add(
        "pipeline_stages",
        stage_id=world.ids("pipeline_stages", n_stages),
        code=np.arange(n_stages),
        **stamp(np.full(n_stages, long_ago)),
    )
    world.arrays["fx"] = FX_START.copy()
    _init_prices(world)


def _init_users(world: World, rng: np.random.Generator) -> None:
    n = user_count(world.scale)
    roles = rng.choice(4, size=n, p=[0.3, 0.35, 0.25, 0.1])
    roles[:4] = np.arange(4)  # every role exists even at tiny scales
    created = world.origin - rng.integers(30, 900, n) * DAY - rng.integers(0, DAY, n)
    world.add(
        "users",
        user_id=world.ids("users", n),
        team_id=rng.integers(1, len(vocab.TEAMS) + 1, n),
        first=rng.integers(0, len(vocab.FIRST_NAMES), n),
        last=rng.integers(0, len(vocab.LAST_NAMES), n),
        role=roles,
        hired_at=days_since_epoch(created) - rng.integers(0, 30, n),
        **stamp(created),
    )


def users_with_role(world: World, role: str) -> np.ndarray:
    users = world.frames["users"]
    return users["user_id"][users["role"] == vocab.USER_ROLES.index(role)]


def _price_from_usd(usd_cents: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """List prices per currency: the USD price converted and rounded to a .99 ending."""
    local = usd_cents[:, None] / 100.0 / fx[None, :]
    rounded = (np.maximum(np.round(local), 1.0) * 100 - 1).astype(np.int64)
    rounded[:, 0] = usd_cents
    return rounded


def _init_prices(world: World) -> None:
    usd = np.array([round(p[4] * 100) for p in vocab.PRODUCTS], dtype=np.int64)
    first = EPOCH + dt.timedelta(days=world.origin // DAY)
    jan1 = (dt.date(first.year, 1, 1) - EPOCH).days
    _add_price_entries(world, _price_from_usd(usd, FX_START), jan1, jan1 * DAY - 10 * DAY)


def _add_price_entries(world: World, prices: np.ndarray, valid_from: int, created: int) -> None:
    n_products, n_cur = prices.shape
    ids = world.ids("price_list_entries", n_products * n_cur)
    world.add(
        "price_list_entries",
        price_list_entry_id=ids,
        product_id=np.repeat(np.arange(1, n_products + 1), n_cur),
        currency=np.tile(np.arange(n_cur), n_products),
        unit_price=prices.ravel(),
        valid_from=np.full(len(ids), valid_from),
        valid_to=np.full(len(ids), -1),
        **stamp(np.full(len(ids), created)),
    )
    world.arrays["price"] = prices.copy()
    world.arrays["price_entry"] = ids.reshape(n_products, n_cur)


def step_prices(world: World, d: int) -> None:
    """Yearly list-price increase on 1 January: close the old entries, add new ones."""
    start = world.origin + d * DAY
    date = EPOCH + dt.timedelta(days=start // DAY)
    if (date.month, date.day) != (1, 1):
        return
    rng = rng_for(world.seed, "prices", d)
    entries = world.frames["price_list_entries"]
    current = np.isin(entries["price_list_entry_id"], world.arrays["price_entry"].ravel())
    entries["valid_to"] = np.where(current, days_since_epoch(start) - 1, entries["valid_to"])
    entries["updated_at"] = np.where(current, start + HOUR, entries["updated_at"])
    usd = world.arrays["price"][:, 0]
    new_usd = (np.round(usd / 100.0 * rng.uniform(1.02, 1.06, len(usd))) * 100 - 1).astype(np.int64)
    new_usd = np.maximum(new_usd, usd)
    _add_price_entries(
        world, _price_from_usd(new_usd, world.arrays["fx"]), days_since_epoch(start), start + HOUR
    )


def step_fx(world: World, d: int) -> None:
    """One row per currency and day; a mean-reverting random walk in log space."""
    rng = rng_for(world.seed, "fx_rates", d)
    fx = world.arrays["fx"]
    log_fx = np.log(fx)
    log_fx += FX_REVERSION * (np.log(FX_START) - log_fx) + rng.normal(0.0, FX_SIGMA, len(fx))
    fx[:] = np.exp(log_fx)
    fx[0] = 1.0
    start = world.origin + d * DAY
    n = len(fx)
    world.add(
        "fx_rates",
        fx_rate_id=world.ids("fx_rates", n),
        rate_date=np.full(n, days_since_epoch(start)),
        currency=np.arange(n),
        usd_per_unit=np.round(fx * 1e8).astype(np.int64),
        **stamp(np.full(n, start + 300)),
    )
