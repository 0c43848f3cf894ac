-- MRR movements per account and month up to the as-of date (macro as_of_date): every column of
-- mart_mrr_movements but the as-of date, which that mart adds; the rules are described there. Part of
-- the marts build (tag as_of, transform.MARTS) like the other as-of models. Incremental across as-of
-- days (macros/as_of_incremental.sql): a run rewrites, for every account, the months from the one
-- running at the last build's day on (their snapshot day moved with the date), and every month of the
-- accounts whose subscriptions changed since. The months before stay as they were: a closed month's
-- MRR is fixed at its last day unless a term of the account or an FX rate of the month changes.
-- depends_on: {{ ref('fct_subscription_mrr_monthly') }}
-- depends_on: {{ source('crm', 'subscriptions') }}
-- depends_on: {{ ref('stg_crm__subscriptions') }}
{{ as_of_incremental('account_id', 'mrr_accounts_changed', unique_columns=['account_id', 'month_start_date'],
                     extra_indexes=[{'columns': ['month_start_date']}], rewritten_rows_macro='mrr_months_rewritten') }}
{%- set window = as_of_window() %}
{%- if window is not none %}
{%- set from_month = mrr_rewrite_from_month(window) %}
{%- endif %}
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),
{%- if window is not none %}

changed_accounts as materialized (

    {{ mrr_accounts_changed(window) }}

),

kept_prior_mrr as (

    -- the accounts with MRR in a month this run keeps: after the pre-hook's delete the table holds only
    -- months before from_month of the accounts not rewritten
    select distinct account_id
    from {{ this }}
    where mrr_reporting > 0

),
{%- endif %}

subscription_months as (

    select * from {{ ref('fct_subscription_mrr_monthly') }}
    {%- if window is not none %}
    -- the rewritten accounts' months, and every account's from the month before from_month: its MRR
    -- is from_month's previous MRR. `in`, a hashed subplan: = any(array(...)) searched the array for
    -- every row of the seq scan (166 of the model's 450 ms with a day's 155 accounts at scale 10)
    where account_id in (select account_id from changed_accounts)
        or month_start_date >= cast(cast('{{ from_month }}' as date) - interval '1 month' as date)
    {%- endif %}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__monthly') }}

),

calendar as (

    select distinct
        month_start_date,
        month_end_date
    from {{ ref('dim_date') }}

),

months as (

    select
        calendar.month_start_date,
        calendar.month_end_date,
        case
            when calendar.month_end_date > as_of.as_of_date then as_of.as_of_date
            else calendar.month_end_date
        end as snapshot_date,
        row_number() over (order by calendar.month_start_date) as month_number
    from calendar
    cross join as_of
    where calendar.month_start_date <= as_of.as_of_date

),

active_terms as (

    -- terms running at the end of the snapshot day; an end after the as-of date was not known then
    select
        subscription_months.account_id,
        subscription_months.currency_code,
        subscription_months.month_start_date,
        sum(subscription_months.mrr_amount) as mrr_amount
    from subscription_months
    inner join months
        on months.month_start_date = subscription_months.month_start_date
    where not subscription_months.is_deleted
      and subscription_months.started_date <= months.snapshot_date
      and (subscription_months.ended_date is null or subscription_months.ended_date > months.snapshot_date)
    group by
        subscription_months.account_id,
        subscription_months.currency_code,
        subscription_months.month_start_date
    order by
        subscription_months.account_id,
        subscription_months.currency_code,
        subscription_months.month_start_date

),

account_currencies as (

    select
        account_id,
        currency_code,
        min(month_start_date) as first_month_start_date
    from active_terms
    group by account_id, currency_code

),

spine as (

    -- every month from the account's first MRR on, so months at 0 (churn, gaps) exist
    -- the month numbers from the first month's to the last one, an equi-join to months: the
    -- inequality join compared every account with every month (3.3M pairs at scale 10)
    select
        account_currencies.account_id,
        account_currencies.currency_code,
        months.month_start_date
    from account_currencies
    inner join months as first_months
        on first_months.month_start_date = account_currencies.first_month_start_date
    cross join lateral generate_series(
        first_months.month_number,
        (select max(month_number) from months)
    ) as month_numbers (month_number)
    inner join months
        on months.month_number = month_numbers.month_number

),

currency_months as (

    select
        spine.account_id,
        spine.currency_code,
        spine.month_start_date,
        coalesce(active_terms.mrr_amount, 0) as mrr_amount,
        coalesce(lag(active_terms.mrr_amount) over (
            partition by spine.account_id, spine.currency_code
            order by spine.month_start_date
        ), 0) as previous_mrr_amount,
        lag(fx_rates.fx_rate_to_reporting) over (
            partition by spine.account_id, spine.currency_code
            order by spine.month_start_date
        ) as previous_fx_rate_to_reporting,
        fx_rates.fx_rate_to_reporting
    from spine
    left join active_terms
        on active_terms.account_id = spine.account_id
        and active_terms.currency_code = spine.currency_code
        and active_terms.month_start_date = spine.month_start_date
    left join fx_rates
        on fx_rates.currency_code = spine.currency_code
        and fx_rates.month_start_date = spine.month_start_date
    -- already in account order after the windows: ordering by month within the account lets
    -- account_months aggregate the sorted rows instead of hashing them (-0.5 s at scale 10)
    order by spine.account_id, spine.month_start_date

),

account_months as (

    select
        account_id,
        month_start_date,
        sum({{ to_reporting('mrr_amount', 'fx_rate_to_reporting') }}) as mrr_reporting,
        sum({{ to_reporting('previous_mrr_amount', 'coalesce(previous_fx_rate_to_reporting, fx_rate_to_reporting)') }}) as previous_mrr_reporting,
        sum({{ to_reporting('previous_mrr_amount', 'fx_rate_to_reporting') }}) as previous_mrr_constant_fx_reporting
    from currency_months
    group by account_id, month_start_date

),

with_history as (

    select
        *,
        -- had MRR in some month before this one (a return after a month at 0 is a reactivation)
        coalesce(max(case when mrr_reporting > 0 then 1 else 0 end) over (
            partition by account_id
            order by month_start_date
            rows between unbounded preceding and 1 preceding
        ), 0) = 1
        {%- if window is not none %}
            -- or in a month this run keeps
            or account_id in (select account_id from kept_prior_mrr)
        {%- endif %} as had_prior_mrr
    from account_months

),

classified as materialized (

    -- materialized: inlined into final, its movement_type case was evaluated once per reference
    -- (a dozen times a row, ~0.4 s at scale 10)

    select
        *,
        case
            when previous_mrr_constant_fx_reporting = 0 and mrr_reporting > 0 and not had_prior_mrr then 'new'
            when previous_mrr_constant_fx_reporting = 0 and mrr_reporting > 0 then 'reactivation'
            -- churn before contraction: a fall to 0 is churn, never contraction
            when previous_mrr_constant_fx_reporting > 0 and mrr_reporting = 0 then 'churn'
            when mrr_reporting > previous_mrr_constant_fx_reporting then 'expansion'
            when mrr_reporting < previous_mrr_constant_fx_reporting then 'contraction'
            when mrr_reporting > 0 then 'retained'
            else 'inactive'
        end as movement_type,
        mrr_reporting - previous_mrr_constant_fx_reporting as mrr_change_reporting
    from with_history

),

final as (

    select
        classified.account_id,
        classified.month_start_date,
        months.month_end_date,
        months.snapshot_date,
        {{ reporting_currency() }} as reporting_currency,
        classified.previous_mrr_reporting,
        classified.previous_mrr_constant_fx_reporting,
        classified.previous_mrr_constant_fx_reporting - classified.previous_mrr_reporting as fx_effect_reporting,
        classified.mrr_reporting,
        classified.mrr_change_reporting,
        classified.movement_type,
        classified.movement_type = 'new' as is_new,
        classified.movement_type = 'expansion' as is_expansion,
        classified.movement_type = 'contraction' as is_contraction,
        classified.movement_type = 'churn' as is_churn,
        classified.movement_type = 'reactivation' as is_reactivation,
        case when classified.movement_type = 'new' then classified.mrr_change_reporting else 0 end as new_mrr_reporting,
        case when classified.movement_type = 'expansion' then classified.mrr_change_reporting else 0 end as expansion_mrr_reporting,
        case when classified.movement_type = 'contraction' then classified.mrr_change_reporting else 0 end as contraction_mrr_reporting,
        case when classified.movement_type = 'churn' then classified.mrr_change_reporting else 0 end as churned_mrr_reporting,
        case when classified.movement_type = 'reactivation' then classified.mrr_change_reporting else 0 end as reactivation_mrr_reporting,
        classified.had_prior_mrr,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from classified
    inner join months
        on months.month_start_date = classified.month_start_date
    -- months at 0 after a churn carry no movement
    where classified.movement_type <> 'inactive'
    {%- if window is not none %}
        and (classified.account_id in (select account_id from changed_accounts)
             or classified.month_start_date >= cast('{{ from_month }}' as date))
    {%- endif %}

)

select * from final
