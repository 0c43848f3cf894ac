"""The simulator's in-memory columns per table (int64 unless listed). Codes index vocab.py tuples."""

import numpy as np

from .frame import Frame

META = "created_at updated_at deleted_at _in_db"
COLUMNS = {
    "teams": "team_id name",
    "users": "user_id team_id first last role hired_at",
    "products": "product_id code is_active",
    "pipeline_stages": "stage_id code",
    "price_list_entries": "price_list_entry_id product_id currency unit_price valid_from valid_to",
    "fx_rates": "fx_rate_id rate_date currency usd_per_unit",
    "campaigns": "campaign_id channel start_date end_day budget currency",
    "accounts": (
        "account_id co_a co_b co_sfx tld domain_key industry employee_count country "
        "segment owner_user_id first_contact_id n_contacts"
    ),
    "contacts": "contact_id account_id first last title phone",
    "leads": (
        "lead_id first last co_a co_b co_sfx tld country segment channel campaign_id "
        "owner_user_id worked_at qualified_at disqualified_at converted_at "
        "converted_customer_id"
    ),
    "customers": (
        "customer_id account_id first last email_domain phone country segment status "
        "channel campaign_id owner_user_id signed_up_at lam p nu mu alive episode_end "
        "churn_at last_order_at"
    ),
    "deals": (
        "deal_id account_id customer_id lead_id owner_user_id kind amount currency "
        "channel expected_close stages stage_times steps final_at won segment"
    ),
    "deal_stage_history": (
        "deal_stage_history_id deal_id from_stage_id to_stage_id changed_by_user_id changed_at _seq"
    ),
    "activities": (
        "activity_id occurred_at _seq type_ deal_id customer_id contact_id user_id outcome duration"
    ),
    "orders": "order_id customer_id ordered_at currency sales_channel ship_at complete_at cancel_at",
    "order_lines": "order_line_id order_id product_id quantity unit_price discount",
    "refunds": "refund_id order_id amount currency reason refunded_at _seq",
    "subscriptions": (
        "subscription_id account_id customer_id product_id previous_subscription_id mrr "
        "currency started_at term_end ended_at status"
    ),
    "support_tickets": (
        "ticket_id customer_id opened_at pending_at solved_at closed_plan priority category score"
    ),
    "campaign_spend_daily": "campaign_spend_id campaign_id spend_date amount currency impressions clicks",
    "campaign_touches": "touch_id campaign_id customer_id lead_id touch_type touched_at",
    "web_sessions": (
        "session_id customer_id anon started_at ended_at page_views landing_page utm campaign_id device"
    ),
}
FLOATS = {"lam", "p", "nu", "mu"}
BOOLS = {"_in_db", "is_active", "alive", "won"}
WIDE = {"stages": 10, "stage_times": 10}


def empty_frame(table: str) -> Frame:
    cols = {}
    for name in (COLUMNS[table] + " " + META).split():
        dtype = np.float64 if name in FLOATS else bool if name in BOOLS else np.int64
        cols[name] = np.empty((0, WIDE[name]) if name in WIDE else (0,), dtype=dtype)
    return Frame(cols)
