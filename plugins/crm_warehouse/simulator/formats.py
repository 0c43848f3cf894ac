"""The contract columns of every table and how to encode them from the simulator's coded rows."""

import numpy as np

from . import reference, vocab
from .copy_writer import booleans, cents, codes, dates, int4, int4_null, int8, numeric, ref8, text, timestamps
from .state import World

COMPANY_DOMAIN = "tillwise.com"
FIRST = np.array(vocab.FIRST_NAMES)
LAST = np.array(vocab.LAST_NAMES)
FIRST_CAP = np.array([x.capitalize() for x in vocab.FIRST_NAMES])
LAST_CAP = np.array([x.capitalize() for x in vocab.LAST_NAMES])


def cat(*parts) -> np.ndarray:
    out = parts[0]
    for p in parts[1:]:
        out = np.strings.add(out, p)
    return np.asarray(out)


def company_name(r) -> np.ndarray:
    a = np.array([x.capitalize() for x in vocab.COMPANY_A])[r["co_a"]]
    b = np.array([x.capitalize() for x in vocab.COMPANY_B])[r["co_b"]]
    return cat(a, " ", b, " ", np.array(vocab.COMPANY_SUFFIX)[r["co_sfx"]])


def company_domain(r) -> np.ndarray:
    return cat(
        np.array(vocab.COMPANY_A)[r["co_a"]],
        np.array(vocab.COMPANY_B)[r["co_b"]],
        r["domain_key"].astype(str),
        ".",
        np.array(vocab.TLDS)[r["tld"]],
    )


def person_email(r, id_col: str, domain: np.ndarray) -> np.ndarray:
    return cat(FIRST[r["first"]], ".", LAST[r["last"]], ".", r[id_col].astype(str), "@", domain)


def full_name(r) -> np.ndarray:
    return cat(FIRST_CAP[r["first"]], " ", LAST_CAP[r["last"]])


def phones(r):
    cc = np.array(vocab.COUNTRY_PHONE)[r["country"]]
    return text(cat("+", cc, " ", r["phone"].astype(str)), r["phone"] <= 0)


def account_rows(world: World, account_id: np.ndarray) -> dict[str, np.ndarray]:
    acc = world.frames["accounts"]
    if not len(acc):
        return {
            k: np.zeros(len(account_id), np.int64)
            for k in ("co_a", "co_b", "co_sfx", "tld", "domain_key", "country")
        }
    idx = np.minimum(np.searchsorted(acc["account_id"], account_id), max(len(acc) - 1, 0))
    return {k: acc[k][idx] for k in ("co_a", "co_b", "co_sfx", "tld", "domain_key", "country")}


def customer_email(world: World):
    def fmt(r):
        consumer = np.array(vocab.CONSUMER_DOMAINS)[np.maximum(r["email_domain"], 0)]
        company = company_domain(account_rows(world, r["account_id"])) if len(r["account_id"]) else consumer
        domain = np.where(r["email_domain"] == -1, company, consumer)
        return text(person_email(r, "customer_id", domain), r["email_domain"] == -2)

    return fmt


def contact_email(world: World):
    return lambda r: text(person_email(r, "contact_id", company_domain(account_rows(world, r["account_id"]))))


def contact_phone(world: World):
    return lambda r: phones({"phone": r["phone"], "country": account_rows(world, r["account_id"])["country"]})


def lead_email(r):
    return text(person_email(r, "lead_id", company_domain({**r, "domain_key": r["lead_id"]})))


def deal_name(world: World):
    return lambda r: text(
        cat(company_name(account_rows(world, r["account_id"])), " - ", np.array(vocab.DEAL_KINDS)[r["kind"]])
    )


def campaign_name(r):
    label = np.array([c.replace("_", " ").title() for c in vocab.CHANNELS])[r["channel"]]
    month = np.strings.slice(np.datetime_as_string(r["start_date"].astype("datetime64[D]")), 0, 7)
    return text(cat(label, " ", month, " #", r["campaign_id"].astype(str)))


def names(column: str, table: np.ndarray):
    return lambda r: text(table[r[column]])


def meta():
    """The bookkeeping columns every contract table ends with."""
    return [col("created_at", timestamps), col("updated_at", timestamps), col("is_deleted", booleans)]


def col(name: str, fmt, src: str | None = None):
    source = src or name
    return (name, lambda r: fmt(r[source]))


def code(name: str, vocab_: tuple, src: str | None = None):
    source = src or name
    return (name, lambda r: codes(r[source], vocab_))


def specs(world: World) -> dict[str, list]:
    stage = reference.STAGES
    return {
        "teams": [
            col("team_id", int8),
            ("name", lambda r: codes(r["name"], [t[0] for t in vocab.TEAMS])),
            ("region", lambda r: codes(r["name"], [t[1] for t in vocab.TEAMS])),
        ],
        "users": [
            col("user_id", int8),
            col("team_id", int8),
            ("full_name", lambda r: text(full_name(r))),
            ("email", lambda r: text(person_email(r, "user_id", COMPANY_DOMAIN))),
            code("role", vocab.USER_ROLES),
            col("hired_at", dates),
        ],
        "accounts": [
            col("account_id", int8),
            ("name", lambda r: text(company_name(r))),
            ("domain", lambda r: text(company_domain(r))),
            code("industry", vocab.INDUSTRIES),
            col("employee_count", int4),
            code("country", vocab.COUNTRY_CODES),
            code("segment", vocab.ACCOUNT_SEGMENTS),
            col("owner_user_id", ref8),
        ],
        "customers": [
            col("customer_id", int8),
            col("account_id", ref8),
            ("first_name", names("first", FIRST_CAP)),
            ("last_name", names("last", LAST_CAP)),
            ("email", customer_email(world)),
            ("phone", phones),
            code("country", vocab.COUNTRY_CODES),
            code("segment", vocab.CUSTOMER_SEGMENTS),
            code("status", vocab.CUSTOMER_STATUSES),
            code("acquisition_channel", vocab.CHANNELS, "channel"),
            col("acquisition_campaign_id", ref8, "campaign_id"),
            col("owner_user_id", ref8),
            col("signed_up_at", timestamps),
        ],
        "contacts": [
            col("contact_id", int8),
            col("account_id", int8),
            ("first_name", names("first", FIRST_CAP)),
            ("last_name", names("last", LAST_CAP)),
            ("email", contact_email(world)),
            ("phone", contact_phone(world)),
            code("job_title", vocab.JOB_TITLES, "title"),
        ],
        "leads": [
            col("lead_id", int8),
            ("first_name", names("first", FIRST_CAP)),
            ("last_name", names("last", LAST_CAP)),
            ("email", lead_email),
            ("company_name", lambda r: text(company_name(r))),
            code("source_channel", vocab.CHANNELS, "channel"),
            col("campaign_id", ref8),
            code("status", vocab.LEAD_STATUSES),
            col("owner_user_id", ref8),
            col("converted_customer_id", ref8),
            col("converted_at", timestamps),
        ],
        "products": [
            col("product_id", int8),
            ("sku", lambda r: codes(r["code"], [p[0] for p in vocab.PRODUCTS])),
            ("name", lambda r: codes(r["code"], [p[1] for p in vocab.PRODUCTS])),
            ("category", lambda r: codes(r["code"], [p[2] for p in vocab.PRODUCTS])),
            ("is_subscription", lambda r: booleans(np.array([p[3] for p in vocab.PRODUCTS])[r["code"]])),
            (
                "unit_cost_usd",
                lambda r: cents(np.array([round(p[5] * 100) for p in vocab.PRODUCTS])[r["code"]]),
            ),
            col("is_active", booleans),
        ],
        "price_list_entries": [
            col("price_list_entry_id", int8),
            (
                "price_list",
                lambda r: codes(r["currency"], [f"standard_{c.lower()}" for c in vocab.CURRENCIES]),
            ),
            col("product_id", int8),
            code("currency", vocab.CURRENCIES),
            col("unit_price", cents),
            col("valid_from", dates),
            col("valid_to", dates),
        ],
        "fx_rates": [
            col("fx_rate_id", int8),
            col("rate_date", dates),
            code("currency", vocab.CURRENCIES),
            ("usd_per_unit", lambda r: numeric(r["usd_per_unit"], 8)),
        ],
        "pipeline_stages": [
            col("stage_id", int8),
            ("name", lambda r: codes(r["code"], [s[0] for s in stage])),
            ("stage_order", lambda r: int4(np.array([s[1] for s in stage])[r["code"]])),
            (
                "win_probability",
                lambda r: numeric(np.array([round(s[2] * 10_000) for s in stage])[r["code"]], 4),
            ),
            ("is_closed", lambda r: booleans(np.array([s[3] for s in stage])[r["code"]])),
            ("is_won", lambda r: booleans(np.array([s[4] for s in stage])[r["code"]])),
        ],
        "deals": [
            col("deal_id", int8),
            col("account_id", ref8),
            col("customer_id", ref8),
            col("lead_id", ref8),
            col("owner_user_id", int8),
            ("name", deal_name(world)),
            col("stage_id", int8),
            col("amount", cents),
            code("currency", vocab.CURRENCIES),
            code("source_channel", vocab.CHANNELS, "channel"),
            col("expected_close_date", dates, "expected_close"),
            col("closed_at", timestamps),
        ],
        "deal_stage_history": [
            col("deal_stage_history_id", int8),
            col("deal_id", int8),
            col("from_stage_id", ref8),
            col("to_stage_id", int8),
            col("changed_at", timestamps),
            col("changed_by_user_id", ref8),
        ],
        "activities": [
            col("activity_id", int8),
            code("activity_type", vocab.ACTIVITY_TYPES, "type_"),
            col("deal_id", ref8),
            col("customer_id", ref8),
            col("contact_id", ref8),
            col("user_id", int8),
            col("occurred_at", timestamps),
            col("duration_minutes", int4_null, "duration"),
            code("outcome", vocab.ACTIVITY_OUTCOMES),
        ],
        "orders": [
            col("order_id", int8),
            col("customer_id", int8),
            ("order_number", lambda r: text(cat("SO-", np.strings.zfill(r["order_id"].astype(str), 8)))),
            col("ordered_at", timestamps),
            code("status", vocab.ORDER_STATUSES),
            code("currency", vocab.CURRENCIES),
            code("sales_channel", vocab.SALES_CHANNELS),
        ],
        "order_lines": [
            col("order_line_id", int8),
            col("order_id", int8),
            col("product_id", int8),
            col("quantity", int4),
            col("unit_price", cents),
            col("discount_amount", cents, "discount"),
        ],
        "refunds": [
            col("refund_id", int8),
            col("order_id", int8),
            col("amount", cents),
            code("currency", vocab.CURRENCIES),
            code("reason", vocab.REFUND_REASONS),
            col("refunded_at", timestamps),
        ],
        "subscriptions": [
            col("subscription_id", int8),
            col("account_id", int8),
            col("customer_id", ref8),
            col("product_id", int8),
            col("previous_subscription_id", ref8),
            ("plan_name", lambda r: codes(r["product_id"] - 1, [p[1] for p in vocab.PRODUCTS])),
            col("mrr_amount", cents, "mrr"),
            code("currency", vocab.CURRENCIES),
            col("started_at", timestamps),
            col("ended_at", timestamps),
            code("status", vocab.SUB_STATUSES),
        ],
        "support_tickets": [
            col("ticket_id", int8),
            col("customer_id", int8),
            col("opened_at", timestamps),
            col("closed_at", timestamps),
            code("priority", vocab.TICKET_PRIORITIES),
            code("category", vocab.TICKET_CATEGORIES),
            code("status", vocab.TICKET_STATUSES),
            col("satisfaction_score", int4_null, "satisfaction"),
        ],
        "campaigns": [
            col("campaign_id", int8),
            ("name", campaign_name),
            code("channel", vocab.CHANNELS),
            col("start_date", dates),
            col("end_date", dates),
            col("budget", cents),
            code("currency", vocab.CURRENCIES),
        ],
        "campaign_spend_daily": [
            col("campaign_spend_id", int8),
            col("campaign_id", int8),
            col("spend_date", dates),
            col("amount", cents),
            code("currency", vocab.CURRENCIES),
            col("impressions", int4),
            col("clicks", int4),
        ],
        "campaign_touches": [
            col("touch_id", int8),
            col("campaign_id", int8),
            col("customer_id", ref8),
            col("lead_id", ref8),
            code("touch_type", vocab.TOUCH_TYPES),
            col("touched_at", timestamps),
        ],
        "web_sessions": [
            col("session_id", int8),
            col("customer_id", ref8),
            ("anonymous_id", lambda r: text(cat("anon-", r["anon"].astype(str)))),
            col("started_at", timestamps),
            col("ended_at", timestamps),
            col("page_views", int4),
            code("landing_page", vocab.LANDING_PAGES),
            code("utm_source", vocab.UTM_SOURCES, "utm"),
            col("campaign_id", ref8),
            code("device", vocab.DEVICES),
        ],
    }


def table_spec(world: World, table: str) -> list:
    return specs(world)[table] + meta()
