"""BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

While alive, a customer buys at Poisson rate lambda ~ Gamma(r, alpha); after each repeat purchase they
drop out for good with probability p ~ Beta(a, b). Per customer we observe x repeat purchases (frequency),
the time of the last one t_x (recency, from the first purchase) and the age T; all times in one unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from crm_warehouse.predictive.fitting import ArrayLike, as_arrays, fit_log_params


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    n_customers: int = 0


def log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood (paper eq. 6), each term kept in log space."""
    r, alpha, a, b = params
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    common += special.betaln(a, b + x) - special.betaln(a, b)
    alive = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    # the "dropped out after the last purchase" branch exists only for repeat buyers
    dropped = np.full_like(alive, -np.inf)
    xr = x[repeat]
    dropped[repeat] = np.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + t_x[repeat])
    return common + np.logaddexp(alive, dropped)


def log_likelihood_gradient(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """d sum(log_likelihood) / d (r, alpha, a, b).

    Each customer's term is common + log(exp(alive) + exp(dropped)); the two branches' derivatives are
    weighted by their shares of that sum (the dropped branch's share is 0 without repeat purchases).
    """
    r, alpha, a, b = params
    alive = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    dropped = np.full_like(alive, -np.inf)
    xr = x[repeat]
    dropped[repeat] = np.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + t_x[repeat])
    w_dropped = special.expit(dropped - alive)  # exp(dropped) / (exp(alive) + exp(dropped))
    w_alive = 1 - w_dropped
    d_r = (special.digamma(r + x) - special.digamma(r) + np.log(alpha)
           - w_alive * np.log(alpha + T) - w_dropped * np.log(alpha + np.where(repeat, t_x, T)))
    d_alpha = r / alpha - (r + x) * (w_alive / (alpha + T) + w_dropped / (alpha + np.where(repeat, t_x, T)))
    d_a = special.digamma(a + b) - special.digamma(a + b + x) + w_dropped / a
    d_b = (special.digamma(b + x) - special.digamma(a + b + x) - special.digamma(b) + special.digamma(a + b)
           - w_dropped / np.where(repeat, b + x - 1, 1.0))
    return np.array([d_r.sum(), d_alpha.sum(), d_a.sum(), d_b.sum()])


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> BgNbdParams:
    """Maximum-likelihood estimates of (r, alpha, a, b), optimised over their logarithms."""
    x, t_x, age = as_arrays(frequency, recency, T)
    alpha0 = max(float(np.mean(age)), 1e-3)
    params, ll = fit_log_params(lambda p: log_likelihood(p, x, t_x, age), np.array([1.0, alpha0, 1.0, 1.0]),
                                gradient=lambda p: log_likelihood_gradient(p, x, t_x, age))
    return BgNbdParams(*params.tolist(), log_likelihood=ll, n_customers=len(x))


def _log_dropped_odds(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """log of a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x): odds of 'dropped out' vs 'alive'; -inf when x = 0."""
    out = np.full(x.shape, -np.inf)
    rep = x > 0
    xr = x[rep]
    out[rep] = (np.log(params.a) - np.log(params.b + xr - 1)
                + (params.r + xr) * (np.log(params.alpha + T[rep]) - np.log(params.alpha + t_x[rep])))
    return out


def p_alive(params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(still alive at T | x, t_x, T) (paper eq. 13)."""
    x, t_x, age = as_arrays(frequency, recency, T)
    return special.expit(-_log_dropped_odds(params, x, t_x, age))


def expected_purchases(params: BgNbdParams, t: float, frequency: ArrayLike, recency: ArrayLike,
                       T: ArrayLike) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (paper eq. 10).

    The paper's 2F1(r+x, b+x; a+b+x-1; z) times (1-z)^(r+x) grows and shrinks with x; Euler's transformation
    turns the product into (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose series stays tame for any x.
    """
    x, t_x, age = as_arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + age + t)
    with np.errstate(all="ignore"):
        tail = (1 - z) ** (a - 1) * special.hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
        alive = (a + b + x - 1) / (a - 1) * (1 - tail)
    # with large a and b (a flat likelihood on little data) and z near 1 (customers first seen lately),
    # 2F1 overflows while (1-z)^(a-1) underflows: 0 * inf. Those customers get the same expectation by
    # quadrature over the dropout probability instead.
    broken = ~np.isfinite(alive)
    if broken.any():
        alive[broken] = _expected_while_alive_by_quadrature(params, t, x[broken], age[broken])
    return alive * special.expit(-_log_dropped_odds(params, x, t_x, age))


def expected_purchases_new_customer(params: BgNbdParams, t: float) -> float:
    """E[X(t)] for a customer just acquired (paper eq. 7)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + t)
    return float((a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1, z)))


QUADRATURE_NODES = 200
# above this a + b, Beta(a, b + x) quantiles come from its normal approximation: betaincinv's cost grows with
# a and b (0.2 s a call at 1e12; a fit on a few hundred customers who never drop out reached 4e17 and never
# returned), while the approximation's relative error falls below 1e-5 from 1e6 on
NORMAL_BETA_ABOVE = 1e6


def _expected_while_alive_by_quadrature(params: BgNbdParams, t: float, x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[purchases in (T, T + t] | alive at T, x, T] as an integral over the dropout probability p.

    Alive at T after x repeat purchases: lambda ~ Gamma(r + x, alpha + T) and p ~ Beta(a, b + x). Given
    both, the count is (1 - exp(-lambda p t)) / p; lambda integrates out in closed form, and p by
    Gauss-Legendre over the Beta's quantiles (u -> p = F^-1(u)), which needs no Beta normalising
    constant (it overflows for large a, b) and whose integrand is bounded, also at p = 0.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    nodes, weights = special.roots_legendre(QUADRATURE_NODES)
    u, weights = (nodes + 1) / 2, weights / 2
    out = np.empty(len(x))
    for xi in np.unique(x):
        p = _beta_quantiles(a, b + xi, u)
        rows = x == xi
        scale = alpha + T[rows, None]
        per_p = -np.expm1((r + xi) * (np.log(scale) - np.log(scale + p * t))) / p
        out[rows] = per_p @ weights
    return out


def _beta_quantiles(a: float, b: float, u: np.ndarray) -> np.ndarray:
    if a + b < NORMAL_BETA_ABOVE:
        return special.betaincinv(a, b, u)
    mean = a / (a + b)
    sd = np.sqrt(mean * (1 - mean) / (a + b + 1))
    return np.clip(mean + sd * special.ndtri(u), np.finfo(float).tiny, 1.0)
