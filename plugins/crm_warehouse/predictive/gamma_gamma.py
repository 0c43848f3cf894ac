"""Gamma-Gamma spend model (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value").

Each transaction value z ~ Gamma(p, nu) with a per-customer nu ~ Gamma(q, gamma); the average value zbar of a
customer's x transactions is then informative about their mean spend p / nu. Fitted on repeat buyers only
(x > 0), as in the note; zbar is assumed independent of the purchase process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from crm_warehouse.predictive.fitting import ArrayLike, as_arrays, fit_log_params


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")
    n_customers: int = 0

    @property
    def population_mean(self) -> float:
        """E[z] for a customer we know nothing about: p * gamma / (q - 1) (finite for q > 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")


def log_likelihood(params: np.ndarray, x: np.ndarray, zbar: np.ndarray) -> np.ndarray:
    """Per-customer log density of zbar given x, with nu integrated out."""
    p, q, gamma = params
    px = p * x
    return (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(gamma)
            + px * np.log(x) + (px - 1) * np.log(zbar) - (px + q) * np.log(gamma + x * zbar))


def log_likelihood_gradient(params: np.ndarray, x: np.ndarray, zbar: np.ndarray) -> np.ndarray:
    """d sum(log_likelihood) / d (p, q, gamma)."""
    p, q, gamma = params
    px = p * x
    log_spent = np.log(gamma + x * zbar)
    common = special.digamma(px + q)
    d_p = x * (common - special.digamma(px) + np.log(x) + np.log(zbar) - log_spent)
    d_q = common - special.digamma(q) + np.log(gamma) - log_spent
    d_gamma = q / gamma - (px + q) / (gamma + x * zbar)
    return np.array([d_p.sum(), d_q.sum(), d_gamma.sum()])


def fit_gamma_gamma(frequency: ArrayLike, monetary_value: ArrayLike) -> GammaGammaParams:
    """ML estimates of (p, q, gamma) from repeat buyers with a positive average order value."""
    x, zbar = as_arrays(frequency, monetary_value)
    keep = (x > 0) & (zbar > 0)
    x, zbar = x[keep], zbar[keep]
    if len(x) < 3:
        raise ValueError(f"the Gamma-Gamma model needs repeat buyers with positive spend; got {len(x)}")
    start = np.array([1.0, 2.0, float(np.mean(zbar))])
    params, ll = fit_log_params(lambda prm: log_likelihood(prm, x, zbar), start,
                                gradient=lambda prm: log_likelihood_gradient(prm, x, zbar))
    return GammaGammaParams(*params.tolist(), log_likelihood=ll, n_customers=len(x))


def expected_order_value(params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
    """E[z | x, zbar] = p (gamma + x zbar) / (p x + q - 1): a weighted mean of the population mean and zbar.

    Customers without repeat purchases (x = 0) get the population mean.
    """
    x, zbar = as_arrays(frequency, monetary_value)
    zbar = np.where(x > 0, zbar, 0.0)
    return params.p * (params.gamma + x * zbar) / (params.p * x + params.q - 1)
