"""Rates that size the simulated business, and the planted ground-truth effects.

Rates marked "per day" are multiplied by the scale. The planted parameters are documented in
docs/source-contract.md; change them there too.
"""

# --- arrivals (per day at scale 1) --------------------------------------------------------------
CONSUMER_SIGNUPS_PER_DAY = 10.5
LEADS_PER_DAY = 40.0
ANONYMOUS_SESSIONS_PER_DAY = 150.0
MARKETING_TOUCHES_PER_DAY = 180.0
WEEKDAY_FACTOR = (1.1, 1.1, 1.1, 1.1, 1.05, 0.8, 0.75)  # Monday..Sunday

# --- purchase process (BG/NBD) -------------------------------------------------------------------
# Each customer buys once at sign-up; afterwards repeat purchases follow a Poisson process with rate
# lambda ~ Gamma(shape=R, rate=ALPHA) per day (times the channel rate multiplier). After every
# purchase the customer drops out for good with probability p ~ Beta(A, B).
PURCHASE_R = 2.0
PURCHASE_ALPHA = 24.0
DROPOUT_A = 2.0
DROPOUT_B = 22.0

# --- order value (gamma-gamma) -------------------------------------------------------------------
# Gross order value in USD z ~ Gamma(shape=P, rate=nu) with nu ~ Gamma(shape=Q, rate=GAMMA) per
# customer; E[z] = P * GAMMA / (Q - 1) = 240 USD (times the channel value multiplier).
SPEND_P = 4.0
SPEND_Q = 3.5
SPEND_GAMMA = 150.0

# --- planted effect 3: acquisition channel -> lifetime value --------------------------------------
# channel: (purchase-rate multiplier, order-value multiplier)
CHANNEL_EFFECTS = {
    "organic": (1.00, 1.00),
    "paid_search": (0.85, 0.90),
    "social": (0.60, 0.75),
    "email": (1.10, 0.95),
    "referral": (1.50, 1.30),
    "partner": (1.20, 1.10),
    "outbound": (1.00, 1.10),
}
CONSUMER_CHANNEL_MIX = {
    "organic": 0.30,
    "paid_search": 0.22,
    "social": 0.20,
    "email": 0.10,
    "referral": 0.12,
    "partner": 0.06,
    "outbound": 0.0,
}
LEAD_CHANNEL_MIX = {
    "organic": 0.15,
    "paid_search": 0.15,
    "social": 0.07,
    "email": 0.08,
    "referral": 0.12,
    "partner": 0.13,
    "outbound": 0.30,
}

# --- planted effect 1: post-demo follow-up calls -> win rate --------------------------------------
FOLLOWUP_WINDOW_DAYS = 24
FOLLOWUP_CALLS_MEAN = 1.5  # calls within the window ~ Poisson(1.5): P(>= 2) = 0.442
WIN_PROB_DEMO = 0.30  # deals with a demo and fewer than 2 follow-up calls
WIN_LIFT_FOLLOWUP = 1.40  # relative lift for deals with >= 2 follow-up calls: 0.42
WIN_PROB_NO_DEMO = 0.25

# --- planted effect 2: rising support tickets -> churn --------------------------------------------
# Alive customers start a "trouble episode" with this daily hazard. During the episode (90 days) they
# open extra tickets, and with EPISODE_CHURN_PROB they stop buying for good at a uniform instant in the
# episode's first EPISODE_CHURN_WITHIN_DAYS days (on top of the BG/NBD dropout, which stays as it is).
# Customers keep their baseline ticket rate after they stop buying.
EPISODE_HAZARD = 1.0 / 500.0
EPISODE_DAYS = 90
EPISODE_EXTRA_TICKETS = 6.0  # expected extra tickets over the whole episode
EPISODE_CHURN_PROB = 0.8
EPISODE_CHURN_WITHIN_DAYS = 21
TICKET_RATE_SHAPE = 2.0  # baseline tickets per customer per year ~ Gamma(2, scale 0.1): mean 0.2
TICKET_RATE_SCALE_PER_YEAR = 0.1

# --- B2B pipeline --------------------------------------------------------------------------------
LEAD_QUALIFY_PROB = 0.35
LEAD_DISQUALIFY_PROB = 0.45
UPSELL_HAZARD = 1.0 / 300.0
ACCOUNT_TOUCH_HAZARD = 1.0 / 20.0

# --- orders --------------------------------------------------------------------------------------
EXTRA_LINES_MEAN = 1.5  # lines per order = 1 + Poisson(1.5)
CANCEL_PROB = 0.04
REFUND_PROB = 0.05
DISCOUNT_PROB = 0.12
INACTIVE_AFTER_DAYS = 180  # the CRM flags a customer inactive after 180 days without an order

# --- subscriptions -------------------------------------------------------------------------------
TERM_DAYS = 365
RENEWAL_MIX = {"renew": 0.65, "expand": 0.14, "contract": 0.08, "churn": 0.13}
CANCEL_HAZARD = 0.03 / 365.0

# --- data maintenance ----------------------------------------------------------------------------
CUSTOMER_EDIT_HAZARD = 0.0004  # profile edits (phone) per customer per day
CUSTOMER_SOFT_DELETE_HAZARD = 0.00002
SOFT_DELETE_HAZARD = {  # per existing row per day
    "accounts": 0.00001,
    "contacts": 0.00005,
    "leads": 0.00005,
    "deals": 0.00003,
    "activities": 0.00002,
    "orders": 0.00001,
    "support_tickets": 0.00002,
    "web_sessions": 0.00001,
    "campaign_touches": 0.00001,
}
HARD_DELETE_SHARE = 0.0005  # per advance call, of the rows of these leaf tables
HARD_DELETE_TABLES = ("activities", "campaign_touches", "web_sessions", "support_tickets")
