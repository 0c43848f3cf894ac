"""Per-customer summaries as of a day: the RFM inputs of the LTV models and the churn-risk features.

Events (orders, tickets, activities) are numpy arrays of a customer index and a day number (days since
1970-01-01); only events on or before the reference day are ever looked at, so every summary is
reproducible as of a past date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Events:
    customer: np.ndarray  # index into the customer id universe
    day: np.ndarray
    value: np.ndarray  # amount per event (zeros where there is none)

    def before(self, day: int) -> Events:
        keep = self.day <= day
        return Events(self.customer[keep], self.day[keep], self.value[keep])


def index_events(customer_ids: np.ndarray, event_customer: np.ndarray, day: np.ndarray,
                 value: np.ndarray | None = None) -> Events:
    """Map events to positions in the sorted `customer_ids`; events of unknown customers are dropped."""
    pos = _positions(np.asarray(customer_ids), np.asarray(event_customer))
    known = pos >= 0
    value = np.zeros(len(day)) if value is None else np.asarray(value, dtype=float)
    return Events(pos[known], np.asarray(day)[known].astype(np.int64), value[known])


def _positions(customer_ids: np.ndarray, event_customer: np.ndarray) -> np.ndarray:
    """Position of each event's customer in the sorted `customer_ids`, -1 where it is not there."""
    if len(customer_ids) == 0:
        return np.full(len(event_customer), -1, np.intp)
    if _small_distinct_ints(customer_ids) and event_customer.dtype.kind == "i":
        # ids up to a small multiple of their count: a table indexed by id finds a million events' customers
        # ~10x faster than searchsorted (random binary searches in a large array)
        table = np.full(customer_ids[-1] + 1, -1, np.intp)
        table[customer_ids] = np.arange(len(customer_ids))
        inside = (event_customer >= 0) & (event_customer <= customer_ids[-1])
        return np.where(inside, table[np.where(inside, event_customer, 0)], -1)
    pos = np.minimum(np.searchsorted(customer_ids, event_customer), len(customer_ids) - 1)
    return np.where(customer_ids[pos] == event_customer, pos, -1)


def _small_distinct_ints(ids: np.ndarray) -> bool:
    return (ids.dtype.kind == "i" and ids[0] >= 0 and ids[-1] < 16 * len(ids) + 1024
            and bool(np.all(ids[1:] > ids[:-1])))


def purchase_days(orders: Events) -> Events:
    """One event per customer and day with the day's total value: the unit of a 'transaction' in BG/NBD."""
    key = orders.customer.astype(np.int64) * 1_000_000 + orders.day
    unique_key, inverse = np.unique(key, return_inverse=True)
    value = np.bincount(inverse, weights=orders.value, minlength=len(unique_key))
    return Events(unique_key // 1_000_000, unique_key % 1_000_000, value)


@dataclass(frozen=True)
class RfmSummary:
    """BG/NBD / Gamma-Gamma inputs in days; `has_orders` is False for customers with no purchase yet."""

    frequency: np.ndarray  # repeat purchase days
    recency: np.ndarray  # days from the first to the last purchase day
    T: np.ndarray  # days from the first purchase day to the reference day
    monetary_value: np.ndarray  # mean value of the repeat purchase days (0 without repeats)
    has_orders: np.ndarray


def rfm_summary(n_customers: int, days: Events, as_of_day: int) -> RfmSummary:
    """Summarise purchase days (see `purchase_days`) on or before `as_of_day`."""
    days = days.before(as_of_day)
    count = np.bincount(days.customer, minlength=n_customers)
    first = np.full(n_customers, as_of_day, dtype=np.int64)
    last = np.full(n_customers, np.iinfo(np.int64).min)
    np.minimum.at(first, days.customer, days.day)
    np.maximum.at(last, days.customer, days.day)
    last = np.where(count > 0, last, first)  # no purchase yet: frequency 0, recency 0, T 0
    first_value = np.zeros(n_customers)
    is_first = days.day == first[days.customer]
    first_value[days.customer[is_first]] = days.value[is_first]
    total = np.bincount(days.customer, weights=days.value, minlength=n_customers)
    frequency = np.maximum(count - 1, 0)
    monetary = np.divide(total - first_value, frequency, out=np.zeros(n_customers), where=frequency > 0)
    return RfmSummary(frequency.astype(float), (last - first).astype(float), (as_of_day - first).astype(float),
                      monetary, count > 0)


def window_sum(events: Events, n_customers: int, start: int, end: int, weights: bool = False) -> np.ndarray:
    """Per customer, the count (or value) of events with start < day <= end."""
    keep = (events.day > start) & (events.day <= end)
    return np.bincount(events.customer[keep], weights=events.value[keep] if weights else None,
                       minlength=n_customers).astype(float)


CHURN_FEATURES = (
    "log_recency_days", "log_tenure_days", "log_purchase_days_365d", "log_avg_order_value",
    "monetary_trend", "purchase_trend", "log_tickets_90d", "ticket_trend", "activity_trend",
)


def churn_features(n_customers: int, days: Events, tickets: Events, activities: Events,
                   ref_day: int, window: int = 90, active_days: int = 180) -> tuple[np.ndarray, np.ndarray]:
    """(eligible, X): eligible are active customers (a purchase in the last `active_days`); X has CHURN_FEATURES.

    Trends compare the last `window` days with the `window` days before, as log1p differences so that a
    drop from 4 to 2 and from 2 to 1 weigh alike; the ticket trend is a plain difference in counts, the
    planted signal being a burst of extra tickets.
    """
    days = days.before(ref_day)
    recent, prior = (ref_day - window, ref_day), (ref_day - 2 * window, ref_day - window)
    rfm = rfm_summary(n_customers, days, ref_day)
    recency = rfm.T - rfm.recency
    eligible = rfm.has_orders & (recency < active_days)
    value_recent = window_sum(days, n_customers, *recent, weights=True)
    value_prior = window_sum(days, n_customers, *prior, weights=True)
    buys_recent, buys_prior = window_sum(days, n_customers, *recent), window_sum(days, n_customers, *prior)
    tickets_recent, tickets_prior = window_sum(tickets, n_customers, *recent), window_sum(tickets, n_customers, *prior)
    acts_recent, acts_prior = window_sum(activities, n_customers, *recent), window_sum(activities, n_customers, *prior)
    total_value = np.bincount(days.customer, weights=days.value, minlength=n_customers)
    avg_value = np.divide(total_value, rfm.frequency + 1, out=np.zeros(n_customers), where=rfm.has_orders)
    columns = [
        np.log1p(recency),
        np.log1p(rfm.T),
        np.log1p(window_sum(days, n_customers, ref_day - 365, ref_day)),
        np.log1p(np.maximum(avg_value, 0)),
        np.log1p(np.maximum(value_recent, 0)) - np.log1p(np.maximum(value_prior, 0)),
        np.log1p(buys_recent) - np.log1p(buys_prior),
        np.log1p(tickets_recent),
        tickets_recent - tickets_prior,
        np.log1p(acts_recent) - np.log1p(acts_prior),
    ]
    return eligible, np.column_stack(columns)[eligible]


def churned_after(n_customers: int, days: Events, ref_day: int, horizon: int) -> np.ndarray:
    """Label: no purchase in (ref_day, ref_day + horizon]."""
    return window_sum(days, n_customers, ref_day, ref_day + horizon) == 0
