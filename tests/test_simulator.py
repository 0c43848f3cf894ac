"""The CRM simulator against a real PostgreSQL: determinism, sizes, integrity, advance, planted effects.

Uses throwaway databases (sim_test_*) on the suite's embedded server and drops them afterwards.
"""

import uuid
from contextlib import contextmanager

import psycopg
import pytest

from crm_warehouse.simulator import advance, simulate
from crm_warehouse.simulator.schema import KEYS, REFERENCES, TABLES

CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD")
EMAIL_RE = "^[a-z0-9._-]+@[a-z0-9.-]+[.][a-z]{2,}$"
FORECAST_COLUMNS = {("deals", "expected_close_date")}  # a planned date: may lie after the clock


@pytest.fixture(scope="module")
def server(embedded) -> str:
    return embedded.warehouse.rsplit("/", 1)[0]


@contextmanager
def throwaway_db(server: str, label: str):
    name = f"sim_test_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"create database {name}")
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f"drop database if exists {name} with (force)")


def table_digests(dsn: str) -> dict[str, str]:
    """md5 of every contract table's rows in key order."""
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(
                f"select md5(coalesce(string_agg(x::text, '|' order by x.{KEYS[t]}), '')) from crm.{t} x"
            ).fetchone()[0]
            for t in TABLES
        }


def scalar(dsn: str, sql: str, params=None):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchone()[0]


def rows(dsn: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def twins(server):
    """Two databases simulated with the same seed and scale, and one with another seed."""
    with throwaway_db(server, "a") as a, throwaway_db(server, "b") as b, throwaway_db(server, "c") as c:
        counts = simulate(a, scale=0.05, seed=7, quiet=True)
        simulate(b, scale=0.05, seed=7, quiet=True)
        simulate(c, scale=0.05, seed=8, quiet=True)
        yield {"a": a, "b": b, "c": c, "counts": counts}


@pytest.fixture(scope="module")
def world(server):
    """A larger world (scale 0.25) for integrity, advance and the planted effects."""
    with throwaway_db(server, "w") as dsn:
        counts = simulate(dsn, scale=0.25, seed=42, quiet=True)
        yield {"dsn": dsn, "counts": counts}


@pytest.fixture(scope="module")
def advanced(world):
    """The world above, advanced by 3 days; remembers what the database looked like before."""
    dsn = world["dsn"]
    before_now = scalar(dsn, "select sim_now from crm.sim_state")
    before_max = {t: scalar(dsn, f"select coalesce(max({KEYS[t]}), 0) from crm.{t}") for t in TABLES}
    before_count = {
        t: scalar(dsn, f"select count(*) from crm.{t} where {KEYS[t]} <= %s", (before_max[t],))
        for t in TABLES
    }
    counts = advance(dsn, days=3, quiet=True)
    return {
        "dsn": dsn,
        "before_now": before_now,
        "before_max": before_max,
        "before_count": before_count,
        "counts": counts,
    }


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables(twins):
    assert table_digests(twins["a"]) == table_digests(twins["b"])


def test_different_seed_differs(twins):
    a, c = table_digests(twins["a"]), table_digests(twins["c"])
    differing = [t for t in TABLES if a[t] != c[t]]
    assert {"customers", "orders", "order_lines", "deals", "activities", "web_sessions"} <= set(differing)


def test_advance_is_deterministic(twins):
    first = advance(twins["a"], days=2, quiet=True)
    second = advance(twins["b"], days=2, quiet=True)
    assert first == second
    assert table_digests(twins["a"]) == table_digests(twins["b"])
    assert scalar(twins["a"], "select sim_now from crm.sim_state") == scalar(
        twins["b"], "select sim_now from crm.sim_state"
    )


# --- sizes ----------------------------------------------------------------------------------------


def test_sizes_follow_scale(twins, world):
    small, large = twins["counts"], world["counts"]
    for table in ("customers", "orders", "order_lines", "leads", "deals", "activities", "web_sessions"):
        assert 3.5 <= large[table] / small[table] <= 6.5, table  # 0.25 / 0.05 = 5
    assert 10_000 * 0.25 * 0.85 <= large["customers"] <= 10_000 * 0.25 * 1.15
    assert 100_000 * 0.25 * 0.75 <= large["orders"] <= 100_000 * 0.25 * 1.25
    assert 2.3 <= large["order_lines"] / large["orders"] <= 2.7
    assert large["fx_rates"] == 730 * 5
    assert large["pipeline_stages"] == 7


def test_returned_counts_match_tables(world):
    for table in TABLES:
        assert scalar(world["dsn"], f"select count(*) from crm.{table}") == world["counts"][table], table


# --- integrity ------------------------------------------------------------------------------------


def _integrity_problems(dsn: str) -> list[str]:
    problems = []
    now = scalar(dsn, "select sim_now from crm.sim_state")
    for (table, column), parent in REFERENCES.items():
        n = scalar(
            dsn,
            f"select count(*) from crm.{table} x where x.{column} is not null and not exists"
            f" (select 1 from crm.{parent} p where p.{KEYS[parent]} = x.{column})",
        )
        if n:
            problems.append(f"{n} dangling {table}.{column}")
    columns = rows(
        dsn,
        "select table_name, column_name, data_type from information_schema.columns"
        " where table_schema = 'crm' and table_name <> 'sim_state'",
    )
    for table, column, data_type in columns:
        if data_type.startswith("timestamp") or (
            data_type == "date" and (table, column) not in FORECAST_COLUMNS
        ):
            n = scalar(dsn, f"select count(*) from crm.{table} where {column} > %s", (now,))
            if n:
                problems.append(f"{n} future {table}.{column}")
        if data_type == "numeric":
            n = scalar(dsn, f"select count(*) from crm.{table} where {column} < 0")
            if n:
                problems.append(f"{n} negative {table}.{column}")
        if column == "currency":
            n = scalar(
                dsn, f"select count(*) from crm.{table} where {column} <> all(%s)", (list(CURRENCIES),)
            )
            if n:
                problems.append(f"{n} bad currency in {table}")
        if column == "email":
            n = scalar(
                dsn,
                f"select count(*) from crm.{table} where {column} !~ %s",
                (EMAIL_RE,),
            )
            if n:
                problems.append(f"{n} malformed {table}.email")
    for table in TABLES:
        n = scalar(dsn, f"select count(*) from crm.{table} where created_at > updated_at")
        if n:
            problems.append(f"{n} rows of {table} with created_at > updated_at")
    return problems


def test_integrity_after_simulate(world):
    assert _integrity_problems(world["dsn"]) == []


def test_integrity_after_advance(advanced):
    assert _integrity_problems(advanced["dsn"]) == []


def test_domain_rules(world):
    dsn = world["dsn"]
    assert scalar(dsn, "select count(*) from crm.fx_rates where currency = 'USD' and usd_per_unit <> 1") == 0
    assert scalar(dsn, "select count(*) from crm.order_lines where quantity < 1") == 0
    # order lines are priced from the price list valid on the order date, in the order's currency
    mismatched = scalar(
        dsn,
        """
        select count(*) from crm.order_lines l join crm.orders o using (order_id)
        where not exists (select 1 from crm.price_list_entries p
                          where p.product_id = l.product_id and p.currency = o.currency
                            and p.unit_price = l.unit_price and p.valid_from <= o.ordered_at::date
                            and (p.valid_to is null or p.valid_to >= o.ordered_at::date))""",
    )
    assert mismatched == 0
    # every deal's history starts without a from-stage and ends at the deal's current stage
    assert (
        scalar(
            dsn,
            """
        select count(*) from crm.deals d
        where d.stage_id <> (select h.to_stage_id from crm.deal_stage_history h where h.deal_id = d.deal_id
                             order by h.changed_at desc, h.deal_stage_history_id desc limit 1)""",
        )
        == 0
    )
    reopened = scalar(
        dsn,
        """
        select count(distinct h.deal_id) from crm.deal_stage_history h
        join crm.pipeline_stages f on f.stage_id = h.from_stage_id
        join crm.pipeline_stages t on t.stage_id = h.to_stage_id where t.stage_order < f.stage_order
        and not t.is_closed""",
    )
    skipped = scalar(
        dsn,
        """
        select count(distinct h.deal_id) from crm.deal_stage_history h
        join crm.pipeline_stages f on f.stage_id = h.from_stage_id
        join crm.pipeline_stages t on t.stage_id = h.to_stage_id
        where not t.is_closed and t.stage_order > f.stage_order + 1""",
    )
    assert reopened > 0 and skipped > 0
    renewals = scalar(
        dsn, "select count(*) from crm.subscriptions where previous_subscription_id is not null"
    )
    assert renewals > 0
    assert scalar(dsn, "select count(*) from crm.orders where is_deleted") > 0


# --- advance --------------------------------------------------------------------------------------


def test_advance_moves_the_clock(advanced):
    dsn = advanced["dsn"]
    now = scalar(dsn, "select sim_now from crm.sim_state")
    assert (now - advanced["before_now"]).days == 3


def test_advance_inserts_new_rows_with_higher_ids(advanced):
    dsn, before = advanced["dsn"], advanced["before_now"]
    for table in (
        "customers",
        "orders",
        "order_lines",
        "deals",
        "deal_stage_history",
        "activities",
        "support_tickets",
        "web_sessions",
        "fx_rates",
        "leads",
    ):
        new = rows(
            dsn,
            f"select count(*), min({KEYS[table]}), min(created_at), min(updated_at) from crm.{table}"
            f" where {KEYS[table]} > %s",
            (advanced["before_max"][table],),
        )[0]
        assert new[0] > 0, table
        assert new[2] > before and new[3] > before, table
        assert (
            scalar(
                dsn,
                f"select count(*) from crm.{table} where {KEYS[table]} <= %s and created_at > %s",
                (advanced["before_max"][table], before),
            )
            == 0
        ), table


def test_advance_updates_existing_rows(advanced):
    dsn, before = advanced["dsn"], advanced["before_now"]
    for table in ("customers", "orders", "deals", "leads", "support_tickets"):
        updated = scalar(
            dsn,
            f"select count(*) from crm.{table} where created_at <= %s and updated_at > %s",
            (before, before),
        )
        assert updated > 0, table
    assert scalar(dsn, "select count(*) from crm.deal_stage_history where created_at > %s", (before,)) > 0
    soft = sum(
        scalar(
            dsn,
            f"select count(*) from crm.{t} where is_deleted and created_at <= %s and updated_at > %s",
            (before, before),
        )
        for t in TABLES
    )
    assert soft > 0


def test_advance_counts_cover_the_changes(advanced):
    dsn, before = advanced["dsn"], advanced["before_now"]
    for table in TABLES:
        changed = scalar(dsn, f"select count(*) from crm.{table} where updated_at > %s", (before,))
        assert changed == advanced["counts"][table], table


def test_advance_hard_deletes_a_few_leaf_rows(advanced):
    dsn = advanced["dsn"]
    lost = 0
    for table in ("activities", "campaign_touches", "web_sessions", "support_tickets"):
        still = scalar(
            dsn,
            f"select count(*) from crm.{table} where {KEYS[table]} <= %s",
            (advanced["before_max"][table],),
        )
        lost += advanced["before_count"][table] - still
    total = sum(
        advanced["before_count"][t]
        for t in ("activities", "campaign_touches", "web_sessions", "support_tickets")
    )
    assert 0 < lost <= total * 0.002


# --- planted effects ------------------------------------------------------------------------------

FOLLOWUP_SQL = """
with demo as (
    select deal_id, min(occurred_at) as demo_at from crm.activities
    where activity_type = 'demo' and deal_id is not null group by deal_id),
calls as (
    select d.deal_id, count(a.activity_id) as n from demo d
    left join crm.activities a on a.deal_id = d.deal_id and a.activity_type = 'call'
        and a.occurred_at > d.demo_at and a.occurred_at <= d.demo_at + interval '24 days'
    group by d.deal_id),
closed as (
    select deals.deal_id, s.is_won from crm.deals
    join crm.pipeline_stages s using (stage_id) where s.is_closed)
select c.n >= 2, count(*), avg(is_won::int)::float from calls c join closed using (deal_id) group by 1
"""

TICKETS_SQL = """
with p as (select sim_now - interval '180 days' as r from crm.sim_state),
eligible as (
    select c.customer_id from crm.customers c, p
    where c.signed_up_at < p.r - interval '180 days' and exists (
        select 1 from crm.orders o where o.customer_id = c.customer_id
        and o.ordered_at > p.r - interval '180 days' and o.ordered_at <= p.r)),
t as (
    select e.customer_id,
        count(t.ticket_id) filter (where t.opened_at > p.r - interval '90 days'
                                   and t.opened_at <= p.r) as recent,
        count(t.ticket_id) filter (where t.opened_at > p.r - interval '180 days'
                                   and t.opened_at <= p.r - interval '90 days') as prior
    from eligible e cross join p left join crm.support_tickets t on t.customer_id = e.customer_id
    group by e.customer_id)
select t.recent > t.prior, count(*), avg((not exists (
    select 1 from crm.orders o, p where o.customer_id = t.customer_id and o.ordered_at > p.r))::int)::float
from t group by 1
"""

CHANNEL_SQL = """
with totals as (
    select order_id, sum(quantity * unit_price - discount_amount) as total from crm.order_lines group by 1),
o as (
    select o.customer_id, t.total * f.usd_per_unit as usd from crm.orders o join totals t using (order_id)
    join crm.fx_rates f on f.currency = o.currency and f.rate_date = o.ordered_at::date
    where o.status <> 'cancelled'),
pc as (
    select c.customer_id, c.acquisition_channel as channel,
        extract(epoch from s.sim_now - c.signed_up_at) / 86400 as tenure, count(o.usd) as n,
        coalesce(sum(o.usd), 0) as usd
    from crm.customers c cross join crm.sim_state s left join o using (customer_id) group by 1, 2, 3)
select channel, (sum(n) / sum(tenure) * 365)::float, (sum(usd) / nullif(sum(n), 0))::float,
    (sum(usd) / sum(tenure) * 365)::float
from pc group by 1
"""


def test_effect_followup_calls_lift_win_rate(world):
    result = {flag: (n, rate) for flag, n, rate in rows(world["dsn"], FOLLOWUP_SQL)}
    lift = result[True][1] / result[False][1]
    assert result[True][0] > 200 and result[False][0] > 200
    assert 1.15 <= lift <= 1.70, f"planted 1.40, measured {lift:.2f}"


def test_effect_rising_tickets_predict_churn(world):
    result = {flag: (n, rate) for flag, n, rate in rows(world["dsn"], TICKETS_SQL)}
    ratio = result[True][1] / result[False][1]
    assert result[True][0] > 40
    assert 1.15 <= ratio <= 2.0, f"expected about 1.4, measured {ratio:.2f}"


def test_effect_channels_differ_in_value(world):
    """Planted: referral x1.5 purchase rate and x1.3 order value, paid social x0.6 and x0.75.

    Customer value is heavy-tailed (gamma-gamma), so at this scale only the ends are checked.
    """
    per_channel = {ch: (rate, aov, usd) for ch, rate, aov, usd in rows(world["dsn"], CHANNEL_SQL)}
    by_value = sorted(per_channel, key=lambda ch: per_channel[ch][2])
    assert by_value[0] == "social"
    assert "referral" in by_value[-2:]
    assert per_channel["referral"][2] / per_channel["social"][2] >= 1.4
    assert per_channel["referral"][0] > per_channel["social"][0]  # orders per customer-year
    assert per_channel["referral"][1] > per_channel["social"][1]  # average order value
