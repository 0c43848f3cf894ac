"""Churn-risk model: L2-regularised logistic regression on standardised features, ROC AUC and risk bands."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

# Bands on the predicted probability of churning within the horizon (documented in docs/predictive-models.md).
BAND_THRESHOLDS = (("low", 0.0), ("medium", 0.3), ("high", 0.6))


@dataclass(frozen=True)
class LogisticModel:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # per standardised feature
    intercept: float
    l2: float

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return special.expit(self._standardise(X) @ self.coef + self.intercept)

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=float) - self.mean) / self.scale


def _penalised_loss(w: np.ndarray, Z: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood + l2/2 * |coef|^2 / n (intercept w[0] not penalised), with gradient."""
    n = len(y)
    eta = w[0] + Z @ w[1:]
    # log(1 + e^eta) - y * eta, computed without overflow
    loss = np.sum(np.logaddexp(0.0, eta) - y * eta) / n + 0.5 * l2 * np.dot(w[1:], w[1:]) / n
    residual = (special.expit(eta) - y) / n
    grad = np.concatenate(([residual.sum()], Z.T @ residual + l2 * w[1:] / n))
    return loss, grad


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1.0) -> LogisticModel:
    """Fit P(y = 1 | x) = expit(b0 + z.w) with z the standardised x; l2 is the ridge penalty on w."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant feature keeps a zero coefficient
    Z = (X - mean) / scale
    w0 = np.zeros(X.shape[1] + 1)
    result = optimize.minimize(_penalised_loss, w0, args=(Z, y, l2), jac=True, method="L-BFGS-B",
                               options={"maxiter": 1000, "gtol": 1e-10})
    return LogisticModel(mean, scale, result.x[1:], float(result.x[0]), l2)


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney U statistic: P(score of a positive > a negative), ties 1/2."""
    y_true = np.asarray(y_true, dtype=bool)
    ranks = stats.rankdata(score)  # average ranks give ties half credit
    n_pos, n_neg = int(y_true.sum()), int((~y_true).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both positive and negative examples")
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def risk_band(score: np.ndarray) -> np.ndarray:
    """'low' below 0.3, 'medium' from 0.3, 'high' from 0.6."""
    names = np.array([name for name, _ in BAND_THRESHOLDS], dtype=object)
    edges = [low for _, low in BAND_THRESHOLDS[1:]]
    return names[np.searchsorted(edges, score, side="right")]
