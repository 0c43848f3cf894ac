"""The predictive task after the core build: fit the LTV and churn models as of a date and write schema ml.

    score(warehouse_dsn, as_of_date=None) -> summary dict

reads core.fct_orders / fct_refunds / fct_support_tickets / fct_activities / dim_customer, fits BG/NBD,
Gamma-Gamma and the churn-risk model, and replaces the rows of that as_of_date in ml.customer_ltv_scores and
ml.customer_churn_risk in one transaction, appending one ml.model_runs row per model.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import psycopg
from psycopg import sql

from crm_warehouse import access
from crm_warehouse.predictive import bgnbd, churn_risk, clv, features, gamma_gamma
from crm_warehouse.predictive.warehouse_io import read_columns, relation_columns, write_rows

log = logging.getLogger(__name__)

EPOCH = date(1970, 1, 1)
CHURN_DAYS = 180  # = dbt var churn_days: no purchase for this long is churn, and the label's horizon
TREND_WINDOW_DAYS = 90
PREDICTION_DAYS = 365.25  # "next 12 months"
CHURN_L2 = 1.0
LTV_COLUMNS = ("customer_id", "as_of_date", "p_alive", "expected_purchases_12m", "expected_order_value", "clv_12m")
CHURN_COLUMNS = ("customer_id", "as_of_date", "churn_risk_score", "churn_risk_band")

DDL = """
create schema if not exists ml;
create table if not exists ml.customer_ltv_scores (
    customer_id bigint not null,
    as_of_date date not null,
    p_alive numeric,
    expected_purchases_12m numeric,
    expected_order_value numeric,
    clv_12m numeric,
    primary key (as_of_date, customer_id)
);
create table if not exists ml.customer_churn_risk (
    customer_id bigint not null,
    as_of_date date not null,
    churn_risk_score numeric,
    churn_risk_band text,
    primary key (as_of_date, customer_id)
);
create table if not exists ml.model_runs (
    run_id bigint generated always as identity primary key,
    model text not null,
    as_of_date date not null,
    parameters jsonb,
    log_likelihood numeric,
    n_customers integer,
    roc_auc numeric,
    fitted_at timestamptz not null default now(),
    seconds numeric
);
"""


@dataclass(frozen=True)
class WarehouseData:
    customer_ids: np.ndarray  # sorted; events index into it
    purchase_days: features.Events  # one per customer and day, value = net revenue after refunds
    tickets: features.Events
    activities: features.Events
    as_of_day: int


@dataclass(frozen=True)
class ModelRun:
    model: str
    parameters: dict
    log_likelihood: float | None
    n_customers: int
    roc_auc: float | None
    seconds: float


def _day(d: date) -> int:
    return (d - EPOCH).days


def default_as_of_date(conn: psycopg.Connection) -> date:
    """The marts' default as-of date (int_loaded_dates__summarized): the latest order or activity day loaded.

    Read from that one-row model when the core build made it, so the marts find their date's scores; computed
    from the facts otherwise (their scans cost ~0.3 s at scale 10)."""
    has_revenue = conn.execute("select exists (select from core.fct_orders where is_revenue_order)").fetchone()[0]
    if not has_revenue:
        raise ValueError("core.fct_orders has no revenue orders: build the core models before scoring")
    if "latest_loaded_date" in relation_columns(conn, "intermediate", "int_loaded_dates__summarized"):
        latest = conn.execute("select latest_loaded_date from intermediate.int_loaded_dates__summarized").fetchone()
        if latest and latest[0]:
            return latest[0]
    latest = conn.execute("select max(ordered_date) from core.fct_orders").fetchone()[0]
    if "occurred_date" in relation_columns(conn, "core", "fct_activities"):
        latest_activity = conn.execute("select max(occurred_date) from core.fct_activities").fetchone()[0]
        latest = max(latest, latest_activity or latest)
    return latest


def _customers_query(conn: psycopg.Connection, as_of: date) -> sql.Composable:
    """Customers not deleted as of the date: by the type-2 row valid that day when dim_customer has history."""
    valid = sql.SQL("")
    if {"valid_from_date", "valid_to_date"} <= relation_columns(conn, "core", "dim_customer"):
        valid = sql.SQL("and valid_from_date <= {d} and (valid_to_date is null or valid_to_date > {d})").format(
            d=sql.Literal(as_of))
    return sql.SQL("select distinct customer_id::int8 from core.dim_customer where not is_deleted {}").format(valid)


def _orders_query(as_of: date) -> sql.Composable:
    return sql.SQL("""
        with refunds as (
            select order_id, sum(refund_amount_reporting) as refunded
            from core.fct_refunds
            where is_revenue_refund and refunded_date <= {as_of}
            group by order_id
        )
        select o.customer_id::int8, (o.ordered_date - date '1970-01-01')::int4,
               -- refunds converted at a later rate can exceed their order a little; an order is worth >= 0
               greatest(coalesce(o.net_amount_reporting, 0) - coalesce(r.refunded, 0), 0)::float8
        from core.fct_orders o
        left join refunds r on r.order_id = o.order_id
        where o.is_revenue_order and o.customer_id is not null and o.ordered_date <= {as_of}
    """).format(as_of=sql.Literal(as_of))


def _dated_events_query(table: str, date_column: str, as_of: date) -> sql.Composable:
    return sql.SQL("""
        select customer_id::int8, ({date_column} - date '1970-01-01')::int4
        from core.{table}
        where customer_id is not null and not is_deleted and {date_column} <= {as_of}
    """).format(table=sql.Identifier(table), date_column=sql.Identifier(date_column), as_of=sql.Literal(as_of))


def load(conn: psycopg.Connection, as_of: date) -> WarehouseData:
    """Everything the models need, as numpy arrays, restricted to events on or before `as_of`."""
    known = np.unique(read_columns(conn, _customers_query(conn, as_of), ["int8"])[0])
    customer_ids, orders = _customers_with_orders(
        known, *read_columns(conn, _orders_query(as_of), ["int8", "int4", "float8"]))
    tickets = features.index_events(customer_ids, *read_columns(
        conn, _dated_events_query("fct_support_tickets", "opened_date", as_of), ["int8", "int4"]))
    if {"customer_id", "occurred_date", "is_deleted"} <= relation_columns(conn, "core", "fct_activities"):
        activity_columns = read_columns(conn, _dated_events_query("fct_activities", "occurred_date", as_of),
                                        ["int8", "int4"])
    else:
        log.warning("core.fct_activities not found: the churn model's activity trend is 0 for everyone")
        activity_columns = [np.zeros(0, np.int64), np.zeros(0, np.int32)]
    activities = features.index_events(customer_ids, *activity_columns)
    return WarehouseData(customer_ids, features.purchase_days(orders), tickets, activities, _day(as_of))


def _customers_with_orders(known: np.ndarray, order_customer: np.ndarray, order_day: np.ndarray,
                           order_value: np.ndarray) -> tuple[np.ndarray, features.Events]:
    """The sorted `known` customers that have an order, and those orders indexed into them.

    The same as np.intersect1d(known, order_customer) and then index_events, but without the intersection's
    sort of the million order customer ids (~0.1 s).
    """
    orders = features.index_events(known, order_customer, order_day, order_value)
    has_orders = np.zeros(len(known), bool)
    has_orders[orders.customer] = True
    position = np.cumsum(has_orders) - 1
    return known[has_orders], features.Events(position[orders.customer], orders.day, orders.value)


def fit_ltv(data: WarehouseData) -> tuple[dict[str, np.ndarray], list[ModelRun]]:
    """BG/NBD and Gamma-Gamma on the RFM summary in days; per-customer predictions."""
    started = time.perf_counter()
    rfm = features.rfm_summary(len(data.customer_ids), data.purchase_days, data.as_of_day)
    bg = bgnbd.fit_bgnbd(rfm.frequency, rfm.recency, rfm.T)
    bg_seconds = time.perf_counter() - started
    started = time.perf_counter()
    gg = gamma_gamma.fit_gamma_gamma(rfm.frequency, rfm.monetary_value)
    predictions = {
        "p_alive": bgnbd.p_alive(bg, rfm.frequency, rfm.recency, rfm.T),
        "expected_purchases_12m": bgnbd.expected_purchases(bg, PREDICTION_DAYS, rfm.frequency, rfm.recency, rfm.T),
        "expected_order_value": gamma_gamma.expected_order_value(gg, rfm.frequency, rfm.monetary_value),
        "clv_12m": clv.discounted_clv(bg, gg, rfm.frequency, rfm.recency, rfm.T, rfm.monetary_value),
    }
    gg_seconds = time.perf_counter() - started
    runs = [
        ModelRun("bgnbd", {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "time_unit": "day",
                           "prediction_days": PREDICTION_DAYS}, bg.log_likelihood, bg.n_customers, None, bg_seconds),
        ModelRun("gamma_gamma", {"p": gg.p, "q": gg.q, "gamma": gg.gamma, "currency": "reporting",
                                 "annual_discount_rate": clv.ANNUAL_DISCOUNT_RATE, "clv_months": 12},
                 gg.log_likelihood, gg.n_customers, None, gg_seconds),
    ]
    log.info("BG/NBD r=%.3f alpha=%.2f a=%.3f b=%.3f on %d customers; Gamma-Gamma p=%.2f q=%.2f gamma=%.1f on %d",
             bg.r, bg.alpha, bg.a, bg.b, bg.n_customers, gg.p, gg.q, gg.gamma, gg.n_customers)
    return predictions, runs


def _churn_dataset(data: WarehouseData, ref_day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(data.customer_ids)
    eligible, X = features.churn_features(n, data.purchase_days, data.tickets, data.activities, ref_day,
                                          TREND_WINDOW_DAYS, CHURN_DAYS)
    y = features.churned_after(n, data.purchase_days, ref_day, CHURN_DAYS)[eligible]
    return eligible, X, y


def _check_both_classes(y: np.ndarray, ref_day: int) -> None:
    if len(y) < 20 or y.all() or not y.any():
        ref = EPOCH + timedelta(days=ref_day)
        raise ValueError(f"not enough history for the churn model at reference date {ref}: "
                         f"{len(y)} active customers, {int(y.sum())} churned")


def fit_churn(data: WarehouseData) -> tuple[np.ndarray, np.ndarray, ModelRun]:
    """Train at as_of - 2N, evaluate out of time at as_of - N, refit at as_of - N and score active customers.

    Both label windows (ref, ref + N] end on or before as_of, so every label is fully observed.
    """
    started = time.perf_counter()
    train_day, eval_day = data.as_of_day - 2 * CHURN_DAYS, data.as_of_day - CHURN_DAYS
    _, X_train, y_train = _churn_dataset(data, train_day)
    _, X_eval, y_eval = _churn_dataset(data, eval_day)
    _check_both_classes(y_train, train_day)
    _check_both_classes(y_eval, eval_day)
    auc = churn_risk.roc_auc(y_eval, churn_risk.fit_logistic(X_train, y_train, CHURN_L2).predict_proba(X_eval))
    model = churn_risk.fit_logistic(X_eval, y_eval, CHURN_L2)
    active, X_now = features.churn_features(len(data.customer_ids), data.purchase_days, data.tickets,
                                            data.activities, data.as_of_day, TREND_WINDOW_DAYS, CHURN_DAYS)
    score = model.predict_proba(X_now)
    parameters = {
        "features": list(features.CHURN_FEATURES),
        "coefficients_standardised": dict(zip(features.CHURN_FEATURES, model.coef.tolist(), strict=True)),
        "intercept": model.intercept, "l2": CHURN_L2, "churn_days": CHURN_DAYS,
        "trend_window_days": TREND_WINDOW_DAYS,
        "train_reference_date": str(EPOCH + timedelta(days=train_day)),
        "evaluation_reference_date": str(EPOCH + timedelta(days=eval_day)),
        "n_train": len(y_train), "train_churn_rate": float(y_train.mean()),
        "n_evaluation": len(y_eval), "evaluation_churn_rate": float(y_eval.mean()),
        "band_thresholds": dict(churn_risk.BAND_THRESHOLDS),
    }
    log.info("Churn model: out-of-time ROC AUC %.3f (trained on %d customers at %s, evaluated on %d at %s)",
             auc, len(y_train), parameters["train_reference_date"], len(y_eval),
             parameters["evaluation_reference_date"])
    run = ModelRun("churn_risk", parameters, None, int(active.sum()), auc, time.perf_counter() - started)
    return active, score, run


def _ltv_rows(data: WarehouseData, as_of: date, predictions: dict[str, np.ndarray]):
    columns = [np.round(predictions["p_alive"], 6), np.round(predictions["expected_purchases_12m"], 6),
               np.round(predictions["expected_order_value"], 2), np.round(predictions["clv_12m"], 2)]
    for customer_id, *values in zip(data.customer_ids.tolist(), *(c.tolist() for c in columns), strict=True):
        yield (customer_id, as_of, *values)


def _churn_rows(data: WarehouseData, as_of: date, active: np.ndarray, score: np.ndarray):
    bands = churn_risk.risk_band(score)
    for customer_id, s, band in zip(data.customer_ids[active].tolist(), np.round(score, 6).tolist(), bands,
                                    strict=True):
        yield (customer_id, as_of, s, band)


def write(conn: psycopg.Connection, data: WarehouseData, as_of: date, predictions: dict[str, np.ndarray],
          churn: tuple[np.ndarray, np.ndarray] | None, runs: list[ModelRun]) -> None:
    """Replace the as_of_date's scores and append the runs, all in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('crm_warehouse.predictive'))")
        cur.execute(DDL)
        cur.execute("delete from ml.customer_ltv_scores where as_of_date = %s", (as_of,))
        write_rows(cur, "ml.customer_ltv_scores", LTV_COLUMNS, _ltv_rows(data, as_of, predictions))
        if churn is not None:
            cur.execute("delete from ml.customer_churn_risk where as_of_date = %s", (as_of,))
            write_rows(cur, "ml.customer_churn_risk", CHURN_COLUMNS, _churn_rows(data, as_of, *churn))
        for run in runs:
            cur.execute("insert into ml.model_runs (model, as_of_date, parameters, log_likelihood, n_customers, "
                        "roc_auc, seconds) values (%s, %s, %s, %s, %s, %s, %s)",
                        (run.model, as_of, json.dumps(run.parameters), run.log_likelihood, run.n_customers,
                         run.roc_auc, round(run.seconds, 3)))


def score(warehouse_dsn: str, as_of_date: date | None = None) -> dict:
    """Fit every model as of `as_of_date` and write schema ml; returns a summary.

    The default date is the marts' default (the latest order or activity day), so the marts find the scores.
    """
    started = time.perf_counter()
    with psycopg.connect(warehouse_dsn) as conn:
        access.assume(conn, access.TRANSFORMER)  # schema ml is dbt's neighbour: the marts join it
        as_of = as_of_date or default_as_of_date(conn)
        data = load(conn, as_of)
        log.info("Loaded %d customers, %d purchase days, %d tickets, %d activities as of %s",
                 len(data.customer_ids), len(data.purchase_days.day), len(data.tickets.day),
                 len(data.activities.day), as_of)
        predictions, runs = fit_ltv(data)
        churn = None
        try:
            active, risk, churn_run = fit_churn(data)
            churn, runs = (active, risk), [*runs, churn_run]
        except ValueError as error:
            log.warning("Churn-risk model skipped: %s", error)
        write(conn, data, as_of, predictions, churn, runs)
    summary = {
        "as_of_date": as_of,
        "n_customers": len(data.customer_ids),
        "n_churn_scored": int(churn[0].sum()) if churn else 0,
        "models": {run.model: {"parameters": run.parameters, "log_likelihood": run.log_likelihood,
                               "n_customers": run.n_customers, "roc_auc": run.roc_auc} for run in runs},
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("Predictive scores written for %s in %.1f s", as_of, summary["seconds"])
    return summary
