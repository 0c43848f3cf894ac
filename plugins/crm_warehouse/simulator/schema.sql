-- The CRM source contract: the operational tables the pipeline extracts.
-- Documented in docs/source-contract.md. Every table has one surrogate key column
-- (<table singular>_id), created_at, updated_at (bumped on every change) and is_deleted.
-- The simulator creates these tables in schema "crm" of the source database.

create schema if not exists crm;

create table if not exists crm.teams (
    team_id          bigint primary key,
    name             text not null,
    region           text not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.users (
    user_id          bigint primary key,
    team_id          bigint not null,
    full_name        text not null,
    email            text not null,
    role             text not null,          -- sdr | account_executive | account_manager | manager
    hired_at         date not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.accounts (
    account_id       bigint primary key,
    name             text not null,
    domain           text,
    industry         text,
    employee_count   integer,
    country          text not null,          -- ISO 3166-1 alpha-2
    segment          text not null,          -- smb | mid_market | enterprise
    owner_user_id    bigint,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.customers (
    customer_id          bigint primary key,
    account_id           bigint,             -- set for B2B customers
    first_name           text not null,
    last_name            text not null,
    email                text,
    phone                text,
    country              text not null,
    segment              text not null,      -- consumer | smb | mid_market | enterprise
    status               text not null,      -- active | inactive
    acquisition_channel  text not null,      -- organic | paid_search | social | email | referral | partner | outbound
    acquisition_campaign_id bigint,
    owner_user_id        bigint,
    signed_up_at         timestamptz not null,
    created_at           timestamptz not null,
    updated_at           timestamptz not null,
    is_deleted           boolean not null default false
);

create table if not exists crm.contacts (
    contact_id       bigint primary key,
    account_id       bigint not null,
    first_name       text not null,
    last_name        text not null,
    email            text,
    phone            text,
    job_title        text,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.leads (
    lead_id              bigint primary key,
    first_name           text not null,
    last_name            text not null,
    email                text,
    company_name         text,
    source_channel       text not null,
    campaign_id          bigint,
    status               text not null,      -- new | working | qualified | disqualified | converted
    owner_user_id        bigint,
    converted_customer_id bigint,
    converted_at         timestamptz,
    created_at           timestamptz not null,
    updated_at           timestamptz not null,
    is_deleted           boolean not null default false
);

create table if not exists crm.products (
    product_id       bigint primary key,
    sku              text not null,
    name             text not null,
    category         text not null,
    is_subscription  boolean not null,
    unit_cost_usd    numeric(12, 2) not null,
    is_active        boolean not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.price_list_entries (
    price_list_entry_id bigint primary key,
    price_list       text not null,          -- e.g. 'standard_usd'
    product_id       bigint not null,
    currency         text not null,
    unit_price       numeric(12, 2) not null,
    valid_from       date not null,
    valid_to         date,                   -- null = open-ended
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.fx_rates (
    fx_rate_id       bigint primary key,
    rate_date        date not null,
    currency         text not null,          -- quote currency; base is USD
    usd_per_unit     numeric(18, 8) not null, -- 1 unit of currency = usd_per_unit USD
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false,
    unique (rate_date, currency)
);

create table if not exists crm.pipeline_stages (
    stage_id         bigint primary key,
    name             text not null,
    stage_order      integer not null,
    win_probability  numeric(5, 4) not null,
    is_closed        boolean not null,
    is_won           boolean not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.deals (
    deal_id          bigint primary key,
    account_id       bigint,
    customer_id      bigint,
    lead_id          bigint,
    owner_user_id    bigint not null,
    name             text not null,
    stage_id         bigint not null,
    amount           numeric(14, 2) not null,
    currency         text not null,
    source_channel   text not null,
    expected_close_date date,
    closed_at        timestamptz,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.deal_stage_history (
    deal_stage_history_id bigint primary key,
    deal_id          bigint not null,
    from_stage_id    bigint,                 -- null for the deal's first stage
    to_stage_id      bigint not null,
    changed_at       timestamptz not null,
    changed_by_user_id bigint,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.activities (
    activity_id      bigint primary key,
    activity_type    text not null,          -- call | email | meeting | demo
    deal_id          bigint,
    customer_id      bigint,
    contact_id       bigint,
    user_id          bigint not null,
    occurred_at      timestamptz not null,
    duration_minutes integer,
    outcome          text,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.orders (
    order_id         bigint primary key,
    customer_id      bigint not null,
    order_number     text not null,
    ordered_at       timestamptz not null,
    status           text not null,          -- placed | shipped | completed | cancelled
    currency         text not null,
    sales_channel    text not null,          -- web | sales | partner
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.order_lines (
    order_line_id    bigint primary key,
    order_id         bigint not null,
    product_id       bigint not null,
    quantity         integer not null,
    unit_price       numeric(12, 2) not null, -- in the order's currency
    discount_amount  numeric(12, 2) not null default 0,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.refunds (
    refund_id        bigint primary key,
    order_id         bigint not null,
    amount           numeric(12, 2) not null, -- positive, in currency
    currency         text not null,
    reason           text,
    refunded_at      timestamptz not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.subscriptions (
    subscription_id  bigint primary key,
    account_id       bigint not null,
    customer_id      bigint,
    product_id       bigint not null,
    previous_subscription_id bigint,         -- the term this one renews or replaces
    plan_name        text not null,
    mrr_amount       numeric(12, 2) not null,
    currency         text not null,
    started_at       timestamptz not null,
    ended_at         timestamptz,            -- null while running
    status           text not null,          -- active | ended | cancelled
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.support_tickets (
    ticket_id        bigint primary key,
    customer_id      bigint not null,
    opened_at        timestamptz not null,
    closed_at        timestamptz,
    priority         text not null,          -- low | normal | high | urgent
    category         text not null,
    status           text not null,          -- open | pending | solved | closed
    satisfaction_score integer,              -- 1..5, null when not rated
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.campaigns (
    campaign_id      bigint primary key,
    name             text not null,
    channel          text not null,
    start_date       date not null,
    end_date         date,
    budget           numeric(14, 2) not null,
    currency         text not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.campaign_spend_daily (
    campaign_spend_id bigint primary key,
    campaign_id      bigint not null,
    spend_date       date not null,
    amount           numeric(14, 2) not null,
    currency         text not null,
    impressions      integer not null,
    clicks           integer not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.campaign_touches (
    touch_id         bigint primary key,
    campaign_id      bigint not null,
    customer_id      bigint,
    lead_id          bigint,
    touch_type       text not null,          -- impression | click | open | form_fill
    touched_at       timestamptz not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);

create table if not exists crm.web_sessions (
    session_id       bigint primary key,
    customer_id      bigint,
    anonymous_id     text not null,
    started_at       timestamptz not null,
    ended_at         timestamptz,
    page_views       integer not null,
    landing_page     text not null,
    utm_source       text,
    campaign_id      bigint,
    device           text not null,          -- desktop | mobile | tablet
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    is_deleted       boolean not null default false
);
