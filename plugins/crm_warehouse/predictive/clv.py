"""Discounted customer lifetime value over a horizon, from the BG/NBD and Gamma-Gamma models."""

from __future__ import annotations

import numpy as np

from crm_warehouse.predictive import bgnbd, gamma_gamma
from crm_warehouse.predictive.fitting import ArrayLike, as_arrays

DAYS_PER_MONTH = 365.25 / 12
ANNUAL_DISCOUNT_RATE = 0.10


def monthly_discount_rate(annual_rate: float = ANNUAL_DISCOUNT_RATE) -> float:
    """The monthly rate equivalent to `annual_rate` compounded monthly: (1 + annual)^(1/12) - 1."""
    return (1 + annual_rate) ** (1 / 12) - 1


def discounted_clv(bg: bgnbd.BgNbdParams, gg: gamma_gamma.GammaGammaParams, frequency: ArrayLike,
                   recency: ArrayLike, T: ArrayLike, monetary_value: ArrayLike, months: int = 12,
                   annual_discount_rate: float = ANNUAL_DISCOUNT_RATE,
                   time_unit_days: float = 1.0) -> np.ndarray:
    """sum over months m of E[purchases in month m] * E[order value] / (1 + d)^m.

    Purchases in month m are E[Y(m)] - E[Y(m - 1)]; each month's value is discounted at its end.
    `time_unit_days` is the length of the models' time unit in days (1 when fitted on days, 7 on weeks).
    """
    x, t_x, age, zbar = as_arrays(frequency, recency, T, monetary_value)
    value = gamma_gamma.expected_order_value(gg, x, zbar)
    rate = monthly_discount_rate(annual_discount_rate)
    month = DAYS_PER_MONTH / time_unit_days
    previous = np.zeros_like(x)
    total = np.zeros_like(x)
    for m in range(1, months + 1):
        cumulative = bgnbd.expected_purchases(bg, m * month, x, t_x, age)
        total += (cumulative - previous) * value / (1 + rate) ** m
        previous = cumulative
    return total
