"""How a simulated row looks at clock T, and which rows must stay in the simulator's memory.

Rows carry their planned transition times (an order's ship/complete/cancel instants, a deal's stage path,
...). as_of() turns them into the contract's columns at T, with updated_at = the latest change <= T.
"""

import numpy as np

from . import reference
from .clock import DAY, HOUR

Rows = dict[str, np.ndarray]
ALWAYS_LIVE = {
    "teams",
    "users",
    "products",
    "price_list_entries",
    "pipeline_stages",
    "campaigns",
    "accounts",
    "customers",
}
DEFERRED_IDS = {"deal_stage_history", "activities", "refunds"}  # ids are given when the row appears
LEAD_MEMORY_DAYS = 400


def _seen(times: np.ndarray, t: int) -> np.ndarray:
    return np.where((times >= 0) & (times <= t), times, -1)


def _latest(*times: np.ndarray) -> np.ndarray:
    return np.maximum.reduce(times)


def as_of(table: str, rows: Rows, t: int) -> Rows:
    rows = dict(rows)
    deleted = _seen(rows["deleted_at"], t)
    rows["is_deleted"] = deleted >= 0
    shaper = _SHAPERS.get(table)
    if shaper:
        shaper(rows, t)
    rows["updated_at"] = _latest(rows["updated_at"], deleted)
    return rows


def _leads(rows: Rows, t: int) -> None:
    worked, qualified, disq, conv = (
        _seen(rows[c], t) for c in ("worked_at", "qualified_at", "disqualified_at", "converted_at")
    )
    rows["status"] = np.select([conv >= 0, disq >= 0, qualified >= 0, worked >= 0], [4, 3, 2, 1], 0)
    rows["converted_at"] = conv
    rows["converted_customer_id"] = np.where(conv >= 0, rows["converted_customer_id"], 0)
    rows["updated_at"] = _latest(rows["updated_at"], worked, qualified, disq, conv)


def _deals(rows: Rows, t: int) -> None:
    n = len(rows["deal_id"])
    k = np.maximum((rows["stage_times"] <= t).sum(axis=1), 1) - 1
    stage = rows["stages"][np.arange(n), k]
    changed = rows["stage_times"][np.arange(n), k]
    rows["stage_id"] = stage
    rows["closed_at"] = np.where(np.isin(stage, (reference.WON, reference.LOST)), changed, -1)
    rows["updated_at"] = _latest(rows["updated_at"], changed)


def _orders(rows: Rows, t: int) -> None:
    ship, complete, cancel = (_seen(rows[c], t) for c in ("ship_at", "complete_at", "cancel_at"))
    rows["status"] = np.select([cancel >= 0, complete >= 0, ship >= 0], [3, 2, 1], 0)
    rows["updated_at"] = _latest(rows["updated_at"], ship, complete, cancel)


def _tickets(rows: Rows, t: int) -> None:
    pending, solved, closed = (_seen(rows[c], t) for c in ("pending_at", "solved_at", "closed_plan"))
    rows["status"] = np.select([closed >= 0, solved >= 0, pending >= 0], [3, 2, 1], 0)
    rows["closed_at"] = closed
    rows["satisfaction"] = np.where(solved >= 0, rows["score"], -1)
    rows["updated_at"] = _latest(rows["updated_at"], pending, solved, closed)


def _campaigns(rows: Rows, t: int) -> None:
    """end_day is the first day without spend; end_date (the last running day) appears once it is over."""
    ended = _seen(rows["end_day"] * DAY + 9 * HOUR, t)
    rows["end_date"] = np.where(ended >= 0, rows["end_day"] - 1, -1)
    rows["updated_at"] = _latest(rows["updated_at"], ended)


_SHAPERS = {
    "leads": _leads,
    "deals": _deals,
    "orders": _orders,
    "support_tickets": _tickets,
    "campaigns": _campaigns,
}


def keep_after(table: str, rows: Rows, t: int) -> np.ndarray:
    """Rows to keep in memory after the database holds everything visible at t."""
    n = len(rows["created_at"])
    if table in ALWAYS_LIVE:
        return np.ones(n, bool)
    if table in DEFERRED_IDS:
        return rows["created_at"] > t
    if table == "leads":
        return rows["created_at"] > t - LEAD_MEMORY_DAYS * DAY
    if table == "deals":
        return rows["final_at"] > t
    if table == "orders":
        return _latest(rows["ship_at"], rows["complete_at"], rows["cancel_at"]) > t
    if table == "subscriptions":
        return rows["status"] == 0
    if table == "support_tickets":
        return rows["closed_plan"] > t
    return np.zeros(n, bool)
