"""Orders with their lines, lifecycle (placed -> shipped -> completed, or cancelled) and refunds."""

import numpy as np

from . import customers, marketing, params, vocab
from .clock import DAY, HOUR, rng_for
from .state import World, next_seq, stamp

LIST_USD = np.array([p[4] for p in vocab.PRODUCTS])
# sellable products by ascending list price, with the cumulative popularity used for sampling
SELLABLE = np.array(sorted((i for i, p in enumerate(vocab.PRODUCTS) if not p[3]), key=lambda i: LIST_USD[i]))
SELL_CUM = np.cumsum([vocab.PRODUCTS[i][6] for i in SELLABLE])
SELL_PRICE = LIST_USD[SELLABLE]


def place_orders(world: World, d: int, rows: np.ndarray, times: np.ndarray) -> None:
    """Create orders for customer rows (indexes into the customers frame) at the given instants."""
    n = len(rows)
    if not n:
        return
    rng = rng_for(world.seed, "orders", d)
    c = world.frames["customers"]
    order = np.argsort(times, kind="stable")
    rows, times = rows[order], times[order]
    ids = world.ids("orders", n)
    currency = np.array(vocab.COUNTRY_CURRENCY)[c["country"][rows]]
    consumer = c["segment"][rows] == customers.CONSUMER
    channel = np.where(
        consumer, rng.choice([0, 2], size=n, p=[0.9, 0.1]), rng.choice(3, size=n, p=[0.3, 0.6, 0.1])
    )
    cancelled = rng.random(n) < params.CANCEL_PROB
    ship = times + rng.integers(HOUR, 3 * DAY, n)
    complete = ship + rng.integers(2 * DAY, 8 * DAY, n)
    cancel = times + rng.integers(HOUR // 2, 2 * DAY, n)
    world.add(
        "orders",
        order_id=ids,
        customer_id=c["customer_id"][rows],
        ordered_at=times,
        currency=currency,
        sales_channel=channel,
        ship_at=np.where(cancelled, -1, ship),
        complete_at=np.where(cancelled, -1, complete),
        cancel_at=np.where(cancelled, cancel, -1),
        **stamp(times),
    )
    value_usd = rng.gamma(params.SPEND_P, 1.0 / c["nu"][rows]) * customers.CHANNEL_VALUE[c["channel"][rows]]
    totals = _lines(world, rng, ids, times, currency, value_usd)
    _refunds(world, rng, ids, np.where(cancelled, -1, complete), totals, currency)
    web = np.nonzero(channel == 0)[0]
    started, ended = marketing.session_window(rng, times[web], world.origin + d * DAY)
    cust_ids = c["customer_id"][rows[web]]
    marketing.add_sessions(
        world,
        rng,
        cust_ids,
        marketing.customer_anon_ids(cust_ids),
        started,
        ended,
        np.full(len(web), vocab.LANDING_PAGES.index("/checkout")),
        np.zeros(len(web), np.int64),
        np.full(len(web), -1),
    )


def _lines(
    world: World,
    rng: np.random.Generator,
    order_ids: np.ndarray,
    times: np.ndarray,
    currency: np.ndarray,
    value_usd: np.ndarray,
) -> np.ndarray:
    """Lines whose list value approximates the order's gamma-gamma value; returns order totals (cents)."""
    n_lines = 1 + rng.poisson(params.EXTRA_LINES_MEAN, len(order_ids))
    owner = np.repeat(np.arange(len(order_ids)), n_lines)
    share = rng.gamma(1.0, 1.0, len(owner))
    share /= np.bincount(owner, weights=share)[owner]
    budget = value_usd[owner] * share
    # a line only picks products costing at most 1.5x its budget, so quantities stay near budget / price
    affordable = np.maximum(np.searchsorted(SELL_PRICE, 1.5 * budget, side="right"), 1)
    pick = np.searchsorted(SELL_CUM, rng.random(len(owner)) * SELL_CUM[affordable - 1], side="right")
    product = SELLABLE[pick]
    quantity = np.maximum(1, np.round(budget / LIST_USD[product])).astype(np.int64)
    unit = world.arrays["price"][product, currency[owner]]
    gross = quantity * unit
    discount = np.where(
        rng.random(len(owner)) < params.DISCOUNT_PROB,
        np.round(gross * rng.uniform(0.05, 0.25, len(owner))),
        0,
    ).astype(np.int64)
    world.add(
        "order_lines",
        order_line_id=world.ids("order_lines", len(owner)),
        order_id=order_ids[owner],
        product_id=product + 1,
        quantity=quantity,
        unit_price=unit,
        discount=discount,
        **stamp(times[owner]),
    )
    return np.bincount(owner, weights=gross - discount, minlength=len(order_ids)).astype(np.int64)


def _refunds(
    world: World,
    rng: np.random.Generator,
    order_ids: np.ndarray,
    complete: np.ndarray,
    totals: np.ndarray,
    currency: np.ndarray,
) -> None:
    """Refunds are planned now and appear (with their id) when they happen, after completion."""
    pick = np.nonzero((complete > 0) & (rng.random(len(order_ids)) < params.REFUND_PROB))[0]
    n = len(pick)
    full = rng.random(n) < 0.5
    amount = np.where(full, totals[pick], np.round(totals[pick] * rng.uniform(0.1, 0.9, n))).astype(np.int64)
    when = complete[pick] + rng.integers(DAY, 30 * DAY, n)
    world.add(
        "refunds",
        refund_id=np.zeros(n, np.int64),
        order_id=order_ids[pick],
        amount=amount,
        currency=currency[pick],
        reason=rng.integers(0, len(vocab.REFUND_REASONS), n),
        refunded_at=when,
        _seq=next_seq(world, "refunds", n),
        **stamp(when),
    )
