"""Predictive customer models: BG/NBD purchases, Gamma-Gamma spend, discounted CLV and churn risk.

See docs/predictive-models.md. The pipeline entry point is `crm_warehouse.predictive.pipeline.score`.
"""

from crm_warehouse.predictive.bgnbd import BgNbdParams, expected_purchases, fit_bgnbd, p_alive
from crm_warehouse.predictive.churn_risk import LogisticModel, fit_logistic, risk_band, roc_auc
from crm_warehouse.predictive.clv import discounted_clv
from crm_warehouse.predictive.gamma_gamma import GammaGammaParams, expected_order_value, fit_gamma_gamma

__all__ = [
    "BgNbdParams", "GammaGammaParams", "LogisticModel", "discounted_clv", "expected_order_value",
    "expected_purchases", "fit_bgnbd", "fit_gamma_gamma", "fit_logistic", "p_alive", "risk_band", "roc_auc",
]
