"""Churn-risk building blocks checked on hand-computed cases: AUC, logistic regression, bands, features."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from crm_warehouse.predictive import churn_risk, features


def test_auc_matches_a_hand_computed_example():
    # positives score 0.9, 0.4, 0.2; negatives 0.8, 0.4. Pairs won: (0.9 > 0.8), (0.9 > 0.4), the tie
    # (0.4, 0.4) counts 1/2, the other three are lost: 2.5 / 6
    y = [1, 0, 1, 0, 1]
    score = [0.9, 0.8, 0.4, 0.4, 0.2]
    assert churn_risk.roc_auc(y, score) == pytest.approx(2.5 / 6)


def test_auc_extremes_and_invariance():
    y = np.array([0, 0, 1, 1])
    assert churn_risk.roc_auc(y, [1, 2, 3, 4]) == 1.0
    assert churn_risk.roc_auc(y, [4, 3, 2, 1]) == 0.0
    assert churn_risk.roc_auc(y, [5, 5, 5, 5]) == 0.5
    assert churn_risk.roc_auc(y, np.log([1, 2, 3, 4])) == 1.0  # only the order matters
    with pytest.raises(ValueError):
        churn_risk.roc_auc([1, 1], [0.1, 0.2])


def test_unpenalised_logistic_regression_recovers_the_group_rates():
    # one binary feature: 1 of 4 churn at x = 0, 3 of 4 at x = 1; the MLE predicts exactly 0.25 and 0.75
    X = np.array([[0.0]] * 4 + [[1.0]] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    model = churn_risk.fit_logistic(X, y, l2=0.0)
    assert model.predict_proba(np.array([[0.0], [1.0]])) == pytest.approx([0.25, 0.75], abs=1e-6)
    # on the raw scale the slope is log(3) - log(1/3) = 2 log 3
    assert model.coef[0] / model.scale[0] == pytest.approx(2 * np.log(3), abs=1e-5)


def test_ridge_keeps_a_separable_case_finite_and_ordered():
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    model = churn_risk.fit_logistic(X, y, l2=1.0)
    proba = model.predict_proba(X)
    assert np.all(np.isfinite(model.coef)) and model.coef[0] > 0
    assert np.all(np.diff(proba) > 0) and proba[1] < 0.5 < proba[2]
    # symmetric data: the intercept is 0; a stronger penalty shrinks the slope
    assert model.intercept == pytest.approx(0.0, abs=1e-6)
    assert churn_risk.fit_logistic(X, y, l2=10.0).coef[0] < model.coef[0]


def test_penalised_loss_gradient_is_exact():
    rng = np.random.default_rng(0)
    Z, y = rng.normal(size=(50, 3)), rng.integers(0, 2, 50).astype(float)
    w = rng.normal(size=4)
    error = optimize.check_grad(lambda v: churn_risk._penalised_loss(v, Z, y, 2.0)[0],
                                lambda v: churn_risk._penalised_loss(v, Z, y, 2.0)[1], w)
    assert error < 1e-6


def test_a_constant_feature_is_harmless():
    X = np.column_stack([np.arange(10.0), np.ones(10)])
    y = (np.arange(10) >= 5).astype(float)
    model = churn_risk.fit_logistic(X, y)
    assert model.coef[1] == 0.0


def test_risk_bands_at_their_thresholds():
    bands = churn_risk.risk_band(np.array([0.0, 0.2999, 0.3, 0.5999, 0.6, 1.0]))
    assert bands.tolist() == ["low", "low", "medium", "medium", "high", "high"]


def _events(ids, customers, days, values=None):
    return features.index_events(np.array(ids), np.array(customers), np.array(days), values)


def test_rfm_summary_by_hand():
    # customer 10: purchase days 100 (two orders: 30 + 20), 110 (40), 130 (60); customer 20: day 120 only;
    # customer 30 buys after the reference day, customer 99 is unknown and ignored
    orders = _events([10, 20, 30], [10, 10, 10, 10, 20, 30, 99], [100, 100, 110, 130, 120, 200, 100],
                     [30.0, 20.0, 40.0, 60.0, 15.0, 5.0, 1.0])
    days = features.purchase_days(orders)
    rfm = features.rfm_summary(3, days, as_of_day=140)
    assert rfm.frequency.tolist() == [2, 0, 0]
    assert rfm.recency.tolist() == [30, 0, 0]
    assert rfm.T.tolist() == [40, 20, 0]
    assert rfm.monetary_value.tolist() == [50.0, 0.0, 0.0]  # mean of the repeat days (40, 60)
    assert rfm.has_orders.tolist() == [True, True, False]


def test_churn_features_and_label_by_hand():
    ids = [1, 2]
    orders = features.purchase_days(_events(ids, [1, 1, 1, 2, 2], [10, 95, 170, 150, 260], [10.0, 20, 30, 40, 50]))
    tickets = _events(ids, [1, 1, 1, 2], [100, 150, 170, 20])
    none = _events(ids, [], [])
    eligible, X = features.churn_features(2, orders, tickets, none, ref_day=180, window=90, active_days=180)
    assert eligible.tolist() == [True, True]
    row = dict(zip(features.CHURN_FEATURES, X[0], strict=True))
    assert row["log_recency_days"] == pytest.approx(np.log1p(10))
    assert row["log_tenure_days"] == pytest.approx(np.log1p(170))
    assert row["log_tickets_90d"] == pytest.approx(np.log1p(3))
    assert row["ticket_trend"] == 3  # 3 tickets in (90, 180], none in (0, 90]
    assert row["purchase_trend"] == pytest.approx(np.log1p(2) - np.log1p(1))
    assert row["monetary_trend"] == pytest.approx(np.log1p(50) - np.log1p(10))
    assert row["activity_trend"] == 0
    # label: customer 2 buys again on day 260, within (180, 360]; customer 1 does not
    assert features.churned_after(2, orders, 180, 180).tolist() == [True, False]
    # 180 days without a purchase: no longer active, so not scored
    eligible_later, _ = features.churn_features(2, orders, tickets, none, ref_day=350, window=90, active_days=180)
    assert eligible_later.tolist() == [False, True]
