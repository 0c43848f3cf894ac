"""A deterministic CRM simulator: the operational source the warehouse extracts from.

simulate(dsn, scale=1.0, seed=42, days=730, end_date=date(2026, 6, 30))  # (re)create and fill schema crm
advance(dsn, days=1)                                                   # move the clock forward
"""

from .engine import advance, simulate

__all__ = ["advance", "simulate"]
