"""The B2B pipeline: leads -> (qualified) account, contacts and a deal -> stage path -> won deals become
customers with a subscription. Deal paths and their activities are planned when the deal is created and
appear as the clock passes them (planted effect 1 lives in plan_deals)."""

import numpy as np

from . import customers, marketing, params, subscriptions, vocab
from .clock import DAY, HOUR, later_same_day, rng_for, times_in_day, weekday_factor
from .reference import DEMO, LOST, NEGOTIATION, PROPOSAL, PROSPECTING, QUALIFICATION, WON, users_with_role
from .state import World, next_seq, stamp

N_SLOTS = 10
SLOT_DAYS = ((0, 0), (1, 8), (3, 14), (5, 20), (5, 20), (3, 10), (3, 10), (5, 30), (10, 40), (5, 30))
LOSS_DAYS = (3, 20)
DEAL_USD = {0: 8_000.0, 1: 35_000.0, 2: 150_000.0}  # median annual deal value by account segment
SUB_PRODUCT = {0: 23, 1: 24, 2: 25}  # product_id of the plan sold to each segment
ACTIVITY = {name: i for i, name in enumerate(vocab.ACTIVITY_TYPES)}
OUTCOME = {name: i for i, name in enumerate(vocab.ACTIVITY_OUTCOMES)}


def step_leads(world: World, d: int) -> None:
    rng = rng_for(world.seed, "leads", d)
    start = world.origin + d * DAY
    n = rng.poisson(params.LEADS_PER_DAY * world.scale * weekday_factor(start))
    created = np.sort(times_in_day(rng, start, n, 0.0, 0.97))
    mix = np.array([params.LEAD_CHANNEL_MIX[c] for c in vocab.CHANNELS])
    channel = rng.choice(len(vocab.CHANNELS), size=n, p=mix / mix.sum())
    campaign = marketing.pick_campaigns(world, d, rng, channel)
    sdrs = users_with_role(world, "sdr")
    worked = created + rng.integers(HOUR, 3 * DAY, n)
    fate = rng.random(n)
    qualify = np.where(fate < params.LEAD_QUALIFY_PROB, worked + rng.integers(2 * DAY, 25 * DAY, n), -1)
    disqualify = np.where(
        (fate >= params.LEAD_QUALIFY_PROB) & (fate < params.LEAD_QUALIFY_PROB + params.LEAD_DISQUALIFY_PROB),
        worked + rng.integers(3 * DAY, 45 * DAY, n),
        -1,
    )
    ids = world.ids("leads", n)
    world.add(
        "leads",
        lead_id=ids,
        first=rng.integers(0, len(vocab.FIRST_NAMES), n),
        last=rng.integers(0, len(vocab.LAST_NAMES), n),
        co_a=rng.integers(0, len(vocab.COMPANY_A), n),
        co_b=rng.integers(0, len(vocab.COMPANY_B), n),
        co_sfx=rng.integers(0, len(vocab.COMPANY_SUFFIX), n),
        tld=rng.integers(0, len(vocab.TLDS), n),
        country=customers.draw_countries(rng, n),
        segment=rng.choice(3, size=n, p=[0.6, 0.3, 0.1]),
        channel=channel,
        campaign_id=campaign,
        owner_user_id=sdrs[rng.integers(0, len(sdrs), n)],
        worked_at=worked,
        qualified_at=qualify,
        disqualified_at=disqualify,
        converted_at=np.full(n, -1, np.int64),
        converted_customer_id=np.zeros(n, np.int64),
        **stamp(created),
    )
    marketing.attribution_touches(world, rng, campaign, created, np.zeros(n, np.int64), ids, final_type=3)


def step_qualified(world: World, d: int) -> None:
    """Leads qualifying today become an account with contacts and a new-business deal."""
    rng = rng_for(world.seed, "accounts", d)
    leads = world.frames["leads"]
    begin = world.origin + d * DAY
    rows = np.nonzero((leads["qualified_at"] >= begin) & (leads["qualified_at"] < begin + DAY))[0]
    n = len(rows)
    if not n:
        return
    t0 = leads["qualified_at"][rows]
    segment = leads["segment"][rows]
    managers = users_with_role(world, "account_manager")
    employees = np.round(np.exp(rng.normal([2.5, 5.0, 7.5], 0.6, (n, 3))[np.arange(n), segment]))
    account_ids = world.ids("accounts", n)
    n_contacts = 1 + rng.poisson(1.2, n)
    first_contact = world.next_id["contacts"]
    world.add(
        "accounts",
        account_id=account_ids,
        co_a=leads["co_a"][rows],
        co_b=leads["co_b"][rows],
        co_sfx=leads["co_sfx"][rows],
        tld=leads["tld"][rows],
        domain_key=leads["lead_id"][rows],
        industry=rng.integers(0, len(vocab.INDUSTRIES), n),
        employee_count=employees.astype(np.int64),
        country=leads["country"][rows],
        segment=segment,
        owner_user_id=managers[rng.integers(0, len(managers), n)],
        first_contact_id=first_contact + np.concatenate([[0], np.cumsum(n_contacts)[:-1]]),
        n_contacts=n_contacts,
        **stamp(t0),
    )
    _add_contacts(world, rng, rows, account_ids, n_contacts, t0)
    aes = users_with_role(world, "account_executive")
    plan_deals(
        world,
        rng,
        t0,
        account_ids,
        np.zeros(n, np.int64),
        leads["lead_id"][rows],
        aes[rng.integers(0, len(aes), n)],
        segment,
        leads["country"][rows],
        leads["channel"][rows],
        kind=np.zeros(n, np.int64),
        size=1.0,
    )


def _add_contacts(
    world: World,
    rng: np.random.Generator,
    lead_rows: np.ndarray,
    account_ids: np.ndarray,
    n_contacts: np.ndarray,
    t0: np.ndarray,
) -> None:
    leads = world.frames["leads"]
    owner = np.repeat(np.arange(len(account_ids)), n_contacts)
    is_lead_person = np.concatenate([[True], np.diff(owner) != 0])
    m = len(owner)
    first = np.where(
        is_lead_person, leads["first"][lead_rows][owner], rng.integers(0, len(vocab.FIRST_NAMES), m)
    )
    last = np.where(
        is_lead_person, leads["last"][lead_rows][owner], rng.integers(0, len(vocab.LAST_NAMES), m)
    )
    created = np.where(is_lead_person, t0[owner], later_same_day(rng, t0[owner], world.origin, HOUR))
    world.add(
        "contacts",
        contact_id=world.ids("contacts", m),
        account_id=account_ids[owner],
        first=first,
        last=last,
        title=rng.integers(0, len(vocab.JOB_TITLES), m),
        phone=customers.draw_phones(rng, m, 0.2),
        **stamp(created),
    )


def step_upsell(world: World, d: int) -> None:
    """Existing B2B customers occasionally open an expansion deal."""
    rng = rng_for(world.seed, "upsell", d)
    c = world.frames["customers"]
    begin = world.origin + d * DAY
    rows = np.nonzero(c["alive"] & (c["account_id"] > 0) & (c["created_at"] < begin))[0]
    rows = rows[rng.random(len(rows)) < params.UPSELL_HAZARD]
    n = len(rows)
    if not n:
        return
    acc = world.frames["accounts"]
    arow = np.searchsorted(acc["account_id"], c["account_id"][rows])
    plan_deals(
        world,
        rng,
        times_in_day(rng, begin, n, 0.3, 0.7),
        c["account_id"][rows],
        c["customer_id"][rows],
        np.zeros(n, np.int64),
        acc["owner_user_id"][arow],
        acc["segment"][arow],
        acc["country"][arow],
        c["channel"][rows],
        kind=np.ones(n, np.int64),
        size=0.3,
    )


def plan_deals(
    world: World,
    rng: np.random.Generator,
    t0: np.ndarray,
    account_id: np.ndarray,
    customer_id: np.ndarray,
    lead_id: np.ndarray,
    owner: np.ndarray,
    segment: np.ndarray,
    country: np.ndarray,
    channel: np.ndarray,
    kind: np.ndarray,
    size: float,
) -> None:
    """Plan each deal's whole stage path, its activities and its outcome (vectorised over deals)."""
    n = len(t0)
    u = rng.random((n, 6))
    lost_early_1 = u[:, 0] < 0.10
    lost_early_2 = ~lost_early_1 & (u[:, 0] < 0.25)
    passes = ~(lost_early_1 | lost_early_2)
    has_demo = passes & (u[:, 1] >= 0.12)
    skip_proposal = passes & (u[:, 2] < 0.06)
    backstep = passes & ~skip_proposal & (u[:, 3] < 0.08)
    reopen = passes & (u[:, 4] < 0.05)
    followups = rng.poisson(params.FOLLOWUP_CALLS_MEAN, n) * has_demo
    p_win = np.where(
        has_demo,
        params.WIN_PROB_DEMO * np.where(followups >= 2, params.WIN_LIFT_FOLLOWUP, 1.0),
        params.WIN_PROB_NO_DEMO,
    )
    won = passes & (u[:, 5] < p_win)
    final = np.where(won, WON, LOST)

    stage = np.zeros((n, N_SLOTS), np.int64)
    stage[:, 0] = PROSPECTING
    stage[:, 1] = np.where(lost_early_1, LOST, QUALIFICATION)
    stage[:, 2] = np.select([lost_early_2, has_demo], [LOST, DEMO], 0)
    stage[:, 3] = np.where(passes & ~skip_proposal, PROPOSAL, 0)
    stage[:, 4] = np.where(passes, NEGOTIATION, 0)
    stage[:, 5] = np.where(backstep, PROPOSAL, 0)
    stage[:, 6] = np.where(backstep, NEGOTIATION, 0)
    stage[:, 7] = np.where(passes, np.where(reopen, LOST, final), 0)
    stage[:, 8] = np.where(reopen, NEGOTIATION, 0)
    stage[:, 9] = np.where(reopen, final, 0)
    lo = np.array([s[0] for s in SLOT_DAYS], float)
    hi = np.array([s[1] for s in SLOT_DAYS], float)
    days = rng.uniform(lo, hi, (n, N_SLOTS))
    days[:, 1:3] = np.where(stage[:, 1:3] == LOST, rng.uniform(*LOSS_DAYS, (n, 2)), days[:, 1:3])
    used = stage > 0
    times = t0[:, None] + np.cumsum(np.where(used, days * DAY, 0.0), axis=1).astype(np.int64)
    # left-align the used slots: column j holds the deal's j-th stage
    order = np.argsort(~used, axis=1, kind="stable")
    steps = used.sum(axis=1)
    stage = np.take_along_axis(stage, order, axis=1)
    times = np.take_along_axis(times, order, axis=1)
    times[np.arange(N_SLOTS)[None, :] >= steps[:, None]] = np.iinfo(np.int64).max
    final_at = times[np.arange(n), steps - 1]

    currency = np.array(vocab.COUNTRY_CURRENCY)[country]
    usd = np.array([DEAL_USD[s] for s in segment]) * size * rng.lognormal(0.0, 0.5, n)
    amount = np.maximum(np.round(usd / world.arrays["fx"][currency] / 100.0) * 100.0, 500.0) * 100
    deal_ids = world.ids("deals", n)
    world.add(
        "deals",
        deal_id=deal_ids,
        account_id=account_id,
        customer_id=customer_id,
        lead_id=lead_id,
        owner_user_id=owner,
        kind=kind,
        amount=amount.astype(np.int64),
        currency=currency,
        channel=channel,
        expected_close=(t0 + rng.integers(30, 90, n) * DAY) // DAY,
        stages=stage,
        stage_times=times,
        steps=steps,
        final_at=final_at,
        won=won,
        segment=segment,
        **stamp(t0),
    )
    _history(world, deal_ids, stage, times, steps, owner)
    demo_at = np.where(has_demo, times[np.arange(n), 2], -1)
    _deal_activities(
        world,
        rng,
        deal_ids,
        customer_id,
        account_id,
        owner,
        t0,
        final_at,
        demo_at,
        followups,
        qualified_at=np.where(lost_early_1, -1, times[:, 1]),
    )


def _history(world: World, deal_ids, stage, times, steps, owner) -> None:
    n = len(deal_ids)
    mask = np.arange(N_SLOTS)[None, :] < steps[:, None]
    prev = np.zeros_like(stage)
    prev[:, 1:] = stage[:, :-1]
    deal_row = np.repeat(np.arange(n), steps)
    changed = times[mask]
    m = len(changed)
    world.add(
        "deal_stage_history",
        deal_stage_history_id=np.zeros(m, np.int64),
        deal_id=deal_ids[deal_row],
        from_stage_id=prev[mask],
        to_stage_id=stage[mask],
        changed_by_user_id=owner[deal_row],
        changed_at=changed,
        _seq=next_seq(world, "deal_stage_history", m),
        **stamp(changed),
    )


def _deal_activities(
    world, rng, deal_ids, customer_id, account_id, owner, t0, final_at, demo_at, followups, qualified_at
) -> None:
    n = len(deal_ids)
    has_demo = demo_at > 0
    parts = []

    def spread(rows, lo, hi, type_, outcome_p, minutes):
        k = len(rows)
        when = lo + (rng.random(k) * np.maximum(hi - lo, 1)).astype(np.int64)
        outcome = rng.choice(len(outcome_p), size=k, p=[p for _, p in outcome_p])
        parts.append(
            (
                rows,
                when,
                np.full(k, ACTIVITY[type_]),
                np.array([OUTCOME[o] for o, _ in outcome_p])[outcome],
                rng.integers(minutes[0], minutes[1] + 1, k) if minutes else np.full(k, -1),
            )
        )

    call_outcomes = (("connected", 0.5), ("no_answer", 0.3), ("left_voicemail", 0.2))
    emails = np.repeat(np.arange(n), rng.poisson(3.0, n))
    spread(emails, t0[emails], final_at[emails], "email", (("sent", 0.7), ("replied", 0.3)), None)
    early_end = np.where(has_demo, demo_at, final_at)
    calls = np.repeat(np.arange(n), rng.poisson(1.0, n))
    spread(calls, t0[calls], early_end[calls], "call", call_outcomes, (2, 30))
    meet = np.nonzero((qualified_at > 0) & (rng.random(n) < 0.6))[0]
    spread(
        meet,
        qualified_at[meet],
        np.minimum(qualified_at[meet] + 2 * DAY, final_at[meet]),
        "meeting",
        (("held", 0.85), ("no_show", 0.15)),
        (30, 60),
    )
    demos = np.nonzero(has_demo)[0]
    spread(demos, demo_at[demos], demo_at[demos] + 1, "demo", (("completed", 1.0),), (30, 90))
    # follow-up calls inside the window that drives the planted win-rate lift
    window_end = np.minimum(demo_at + params.FOLLOWUP_WINDOW_DAYS * DAY - HOUR, final_at - HOUR)
    fu = np.repeat(np.arange(n), followups)
    spread(fu, demo_at[fu] + HOUR, window_end[fu], "call", call_outcomes, (2, 30))
    late_start = demo_at + params.FOLLOWUP_WINDOW_DAYS * DAY + HOUR
    late_ok = has_demo & (final_at - late_start > DAY)
    late = np.repeat(np.arange(n), rng.poisson(0.5, n) * late_ok)
    spread(late, late_start[late], final_at[late], "call", call_outcomes, (2, 30))

    rows = np.concatenate([p[0] for p in parts])
    when = np.concatenate([p[1] for p in parts])
    account_rows = np.searchsorted(world.frames["accounts"]["account_id"], account_id[rows])
    acc = world.frames["accounts"]
    contact = (
        acc["first_contact_id"][account_rows]
        + rng.integers(0, 1 << 30, len(rows)) % acc["n_contacts"][account_rows]
    )
    add_activities(
        world,
        when,
        type_=np.concatenate([p[2] for p in parts]),
        deal_id=deal_ids[rows],
        customer_id=customer_id[rows],
        contact_id=contact,
        user_id=owner[rows],
        outcome=np.concatenate([p[3] for p in parts]),
        duration=np.concatenate([p[4] for p in parts]),
    )


def add_activities(world: World, when: np.ndarray, **cols: np.ndarray) -> None:
    m = len(when)
    if m:
        world.add(
            "activities",
            activity_id=np.zeros(m, np.int64),
            occurred_at=when,
            _seq=next_seq(world, "activities", m),
            **cols,
            **stamp(when),
        )


def step_account_management(world: World, d: int) -> None:
    """Account managers' calls, emails and meetings with B2B customers (no deal attached)."""
    rng = rng_for(world.seed, "account_activities", d)
    c = world.frames["customers"]
    begin = world.origin + d * DAY
    rows = np.nonzero((c["account_id"] > 0) & (c["deleted_at"] < 0) & (c["created_at"] < begin))[0]
    rows = rows[rng.random(len(rows)) < params.ACCOUNT_TOUCH_HAZARD * np.where(c["alive"][rows], 1.0, 0.3)]
    n = len(rows)
    if not n:
        return
    acc = world.frames["accounts"]
    arow = np.searchsorted(acc["account_id"], c["account_id"][rows])
    type_ = rng.choice(3, size=n, p=[0.35, 0.45, 0.2])
    outcome = np.select(
        [type_ == 0, type_ == 1],
        [rng.choice([0, 1, 2], size=n, p=[0.5, 0.3, 0.2]), rng.choice([3, 4], size=n, p=[0.7, 0.3])],
        rng.choice([5, 6], size=n, p=[0.85, 0.15]),
    )
    duration = np.select([type_ == 0, type_ == 2], [rng.integers(2, 31, n), rng.integers(30, 61, n)], -1)
    add_activities(
        world,
        times_in_day(rng, begin, n, 0.3, 0.8),
        type_=type_,
        deal_id=np.zeros(n, np.int64),
        customer_id=c["customer_id"][rows],
        contact_id=acc["first_contact_id"][arow] + rng.integers(0, 1 << 30, n) % acc["n_contacts"][arow],
        user_id=acc["owner_user_id"][arow],
        outcome=outcome,
        duration=duration,
    )


def step_closed_won(world: World, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Deals won today: new business creates the customer and converts the lead; both start a subscription.

    Returns the new customers' ids and the times of their first orders."""
    rng = rng_for(world.seed, "closed_won", d)
    deals = world.frames.get("deals")
    none = np.zeros(0, np.int64)
    if deals is None or not len(deals):
        return none, none
    begin = world.origin + d * DAY
    rows = np.nonzero(deals["won"] & (deals["final_at"] >= begin) & (deals["final_at"] < begin + DAY))[0]
    if not len(rows):
        return none, none
    won_at = deals["final_at"][rows]
    is_new = deals["lead_id"][rows] > 0
    customer_id = deals["customer_id"][rows].copy()
    new_ids, first_orders = _convert_leads(world, rng, deals, rows[is_new], begin)
    customer_id[is_new] = new_ids
    product = np.array([SUB_PRODUCT[s] for s in deals["segment"][rows]])
    product = np.where(deals["kind"][rows] == 1, rng.choice([26, 27], size=len(rows)), product)
    subscriptions.start(
        world,
        later_same_day(rng, won_at, world.origin, HOUR),
        deals["account_id"][rows],
        customer_id,
        product,
        np.round(deals["amount"][rows] / 12.0),
        deals["currency"][rows],
        np.zeros(len(rows), np.int64),
    )
    return new_ids, first_orders


def _convert_leads(
    world: World, rng: np.random.Generator, deals, rows: np.ndarray, begin: int
) -> tuple[np.ndarray, np.ndarray]:
    leads = world.frames["leads"]
    lrow = np.minimum(np.searchsorted(leads["lead_id"], deals["lead_id"][rows]), len(leads) - 1)
    if not np.array_equal(leads["lead_id"][lrow], deals["lead_id"][rows]):
        raise RuntimeError("a won deal's lead is missing from the simulator state")
    created = later_same_day(rng, deals["final_at"][rows], world.origin, HOUR)
    acc = world.frames["accounts"]
    arow = np.searchsorted(acc["account_id"], deals["account_id"][rows])
    ids = customers.add_customers(
        world,
        rng,
        created,
        first=leads["first"][lrow],
        last=leads["last"][lrow],
        country=leads["country"][lrow],
        segment=leads["segment"][lrow] + 1,
        channel=leads["channel"][lrow],
        campaign_id=leads["campaign_id"][lrow],
        account_id=deals["account_id"][rows],
        owner=acc["owner_user_id"][arow],
        email_domain=np.full(len(rows), -1),
    )
    leads["converted_at"][lrow] = created
    leads["converted_customer_id"][lrow] = ids
    first_orders = later_same_day(rng, created, world.origin, HOUR)
    return ids, first_orders
