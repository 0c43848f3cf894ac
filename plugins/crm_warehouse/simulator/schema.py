"""Create the CRM source schema (schema.sql), the simulator's state table, and the post-load indexes."""

from pathlib import Path

import psycopg

SCHEMA_SQL = Path(__file__).with_name("schema.sql")

# The contract tables, in load order (parents before children).
TABLES = (
    "teams",
    "users",
    "products",
    "price_list_entries",
    "fx_rates",
    "pipeline_stages",
    "campaigns",
    "accounts",
    "contacts",
    "leads",
    "customers",
    "deals",
    "deal_stage_history",
    "activities",
    "orders",
    "order_lines",
    "refunds",
    "subscriptions",
    "support_tickets",
    "campaign_spend_daily",
    "campaign_touches",
    "web_sessions",
)

KEYS = {
    "teams": "team_id",
    "users": "user_id",
    "accounts": "account_id",
    "customers": "customer_id",
    "contacts": "contact_id",
    "leads": "lead_id",
    "products": "product_id",
    "price_list_entries": "price_list_entry_id",
    "fx_rates": "fx_rate_id",
    "pipeline_stages": "stage_id",
    "deals": "deal_id",
    "deal_stage_history": "deal_stage_history_id",
    "activities": "activity_id",
    "orders": "order_id",
    "order_lines": "order_line_id",
    "refunds": "refund_id",
    "subscriptions": "subscription_id",
    "support_tickets": "ticket_id",
    "campaigns": "campaign_id",
    "campaign_spend_daily": "campaign_spend_id",
    "campaign_touches": "touch_id",
    "web_sessions": "session_id",
}

# References between contract tables: (table, column) -> referenced table. Used by tests and docs.
REFERENCES = {
    ("users", "team_id"): "teams",
    ("accounts", "owner_user_id"): "users",
    ("customers", "account_id"): "accounts",
    ("customers", "acquisition_campaign_id"): "campaigns",
    ("customers", "owner_user_id"): "users",
    ("contacts", "account_id"): "accounts",
    ("leads", "campaign_id"): "campaigns",
    ("leads", "owner_user_id"): "users",
    ("leads", "converted_customer_id"): "customers",
    ("price_list_entries", "product_id"): "products",
    ("deals", "account_id"): "accounts",
    ("deals", "customer_id"): "customers",
    ("deals", "lead_id"): "leads",
    ("deals", "owner_user_id"): "users",
    ("deals", "stage_id"): "pipeline_stages",
    ("deal_stage_history", "deal_id"): "deals",
    ("deal_stage_history", "from_stage_id"): "pipeline_stages",
    ("deal_stage_history", "to_stage_id"): "pipeline_stages",
    ("deal_stage_history", "changed_by_user_id"): "users",
    ("activities", "deal_id"): "deals",
    ("activities", "customer_id"): "customers",
    ("activities", "contact_id"): "contacts",
    ("activities", "user_id"): "users",
    ("orders", "customer_id"): "customers",
    ("order_lines", "order_id"): "orders",
    ("order_lines", "product_id"): "products",
    ("refunds", "order_id"): "orders",
    ("subscriptions", "account_id"): "accounts",
    ("subscriptions", "customer_id"): "customers",
    ("subscriptions", "product_id"): "products",
    ("subscriptions", "previous_subscription_id"): "subscriptions",
    ("support_tickets", "customer_id"): "customers",
    ("campaign_spend_daily", "campaign_id"): "campaigns",
    ("campaign_touches", "campaign_id"): "campaigns",
    ("campaign_touches", "customer_id"): "customers",
    ("campaign_touches", "lead_id"): "leads",
    ("web_sessions", "customer_id"): "customers",
    ("web_sessions", "campaign_id"): "campaigns",
}

STATE_DDL = """
create table crm.sim_state (
    seed            bigint not null,
    scale           double precision not null,
    started_at      timestamptz not null,   -- day 0 of the simulation
    sim_now         timestamptz not null,   -- the simulated clock: no row has a timestamp after it
    days_simulated  integer not null,
    format_version  integer not null,
    state           bytea not null          -- the simulator's latent state (see state.py)
)
"""


def index_statements() -> list[str]:
    """Indexes on updated_at (the extract watermark), created after the bulk load.

    Reference columns get none: nothing in the simulator or the extract looks rows up by them, and
    sixty more index builds would double the load time at scale 10.
    """
    return [f"create index if not exists ix_{t}_updated_at on crm.{t} (updated_at)" for t in TABLES]


def recreate(conn: psycopg.Connection) -> list[str]:
    """Create the schema with its keys dropped for the bulk load; returns the statements restoring them."""
    conn.execute("drop schema if exists crm cascade")
    conn.execute(SCHEMA_SQL.read_text())
    conn.execute(STATE_DDL)
    keys = conn.execute(
        "select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint"
        " where connamespace = 'crm'::regnamespace and contype in ('p', 'u') order by 1, 2"
    ).fetchall()
    for table, name, _ in keys:
        conn.execute(f"alter table {table} drop constraint {name}")
    return [f"alter table {table} add constraint {name} {definition}" for table, name, definition in keys]


def create_indexes(conn: psycopg.Connection, restore_keys: list[str]) -> None:
    for stmt in restore_keys + index_statements():
        conn.execute(stmt)
    for t in TABLES:
        conn.execute(f"analyze crm.{t}")
