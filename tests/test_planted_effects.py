"""The marts recover the effects the simulator planted (docs/source-contract.md), within stated tolerances.

The simulator is deterministic by seed, so these figures are fixed for this seed and scale; the
tolerances say how far from the true effect a correct mart may land at this sample size.
"""

from __future__ import annotations

import pytest

from crm_warehouse import extract_load, settings, simulator, transform
from tests.conftest import query, scalar

SCALE, SEED = 0.5, 42


@pytest.fixture(scope="module")
def marts(embedded):
    """A separate warehouse and source (databases effects_*) built by the real load and transform."""
    wh = settings.with_database(embedded.warehouse, "effects_warehouse")
    src = settings.with_database(embedded.warehouse, "effects_crm")
    admin = settings.with_database(embedded.warehouse, "postgres")
    for dsn in (wh, src):
        name = dsn.rsplit("/", 1)[1]
        query(admin, f'drop database if exists "{name}" with (force)')
        query(admin, f'create database "{name}"')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", wh)
        mp.setenv("CRM_SOURCE_DSN", src)
        simulator.simulate(src, scale=SCALE, seed=SEED, quiet=True)
        extract_load.load_all("effects")
        transform.build_all()
        yield wh


def test_follow_up_calls_after_a_demo_lift_the_win_rate(marts):
    """Planted: two or more calls within 24 days after a demo -> won 1.40 x as often."""
    lift = scalar(marts, "select win_rate_lift from marts.mart_deal_touchpoints_summary "
                         "where touchpoint_group = 'min_followup_calls' and touchpoint_value = 'yes'")
    assert 1.2 <= float(lift) <= 1.65


def test_customers_whose_tickets_rise_churn_more(marts):
    """Planted: a ticket surge precedes most churn. Reference date R = as_of - 180 days; rising = more
    tickets in the 90 days before R than in the 90 before that; churned = no order after R."""
    rows = query(marts, """
        with churn as (
            select customer_id, as_of_date, last_order_date
            from marts.mart_customer_churn where last_order_date is not null
        ), tickets as (
            select c.customer_id,
                   count(*) filter (where t.opened_date > c.as_of_date - 270 and t.opened_date <= c.as_of_date - 180)
                       as recent,
                   count(*) filter (where t.opened_date > c.as_of_date - 360 and t.opened_date <= c.as_of_date - 270)
                       as before
            from churn c left join core.fct_support_tickets t on t.customer_id = c.customer_id and not t.is_deleted
            group by c.customer_id
        )
        select tickets.recent > tickets.before as rising,
               avg(case when churn.last_order_date <= churn.as_of_date - 180 then 1.0 else 0.0 end) as churn_rate,
               count(*)
        from churn join tickets using (customer_id)
        where churn.last_order_date > churn.as_of_date - 360
        group by 1
    """)
    rates = {rising: float(rate) for rising, rate, _ in rows}
    assert rates[True] / rates[False] >= 1.2


def test_acquisition_channels_differ_in_lifetime_value(marts):
    """Planted: referral customers buy most often and most per order, paid social least."""
    rows = query(marts, """
        select acquisition_channel, avg(net_revenue_reporting) as ltv
        from marts.mart_customer_ltv where not is_deleted group by 1 order by 2 desc
    """)
    ranking = [channel for channel, _ in rows]
    ltv = {channel: float(value) for channel, value in rows}
    assert ranking[-1] == "social"
    assert "referral" in ranking[:2]
    assert ltv["referral"] / ltv["social"] >= 1.4


def test_ltv_models_are_fitted_and_recorded_with_the_churn_auc(marts):
    runs = dict(query(marts, "select model, roc_auc from ml.model_runs"))
    assert {"bgnbd", "gamma_gamma", "churn_risk"} <= set(runs)
    assert float(runs["churn_risk"]) > 0.7
    scored = scalar(marts, "select count(*) from marts.mart_customer_ltv where clv_12m is not null")
    assert scored > 0.9 * scalar(marts, "select count(*) from marts.mart_customer_ltv where order_count > 0")
