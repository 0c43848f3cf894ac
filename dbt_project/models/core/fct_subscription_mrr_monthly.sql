-- incremental: a run recomputes every month of the subscriptions that changed in batches the model has
-- not consumed, that run into a month they have no row for yet, or whose FX rate of a month changed
-- (macro subscriptions_to_refresh); a full build recomputes everything
-- depends_on: {{ source('crm', 'subscriptions') }}
{{ incremental_by_key('subscription_id', unique_columns=['subscription_id', 'month_start_date']) }}

-- one row per subscription and calendar month it overlaps (from its start month to the month of
-- its end, or of the latest loaded day while it runs), with its MRR in its currency and in the
-- reporting currency (FX rate of the month, int_fx_rates__monthly). is_active_at_month_end marks
-- the rows that make up the month-end MRR snapshot
with

subscriptions as (

    select * from {{ ref('stg_crm__subscriptions') }}
    {%- if is_incremental() %}
    where subscription_id in ({{ subscriptions_to_refresh() }})
    {%- endif %}

),

loaded as (

    select latest_loaded_date from {{ ref('int_loaded_dates__summarized') }}

),

months as (

    select distinct
        month_start_date,
        month_end_date
    from {{ ref('dim_date') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__monthly') }}

),

subscription_bounds as materialized (

    -- the first and last month once per subscription ("materialized" keeps postgres from inlining
    -- them into the join below, where the truncations ran for every (subscription, calendar month)
    -- pair: 7 of the model's 8 s at scale 10)
    select
        subscriptions.*,
        cast({{ dbt.date_trunc('month', 'subscriptions.started_date') }} as date) as first_month_start_date,
        cast({{ dbt.date_trunc('month', 'coalesce(subscriptions.ended_date, loaded.latest_loaded_date)') }} as date) as last_month_start_date
    from subscriptions
    cross join loaded

),

subscription_months as (

    select
        months.month_start_date,
        months.month_end_date,
        subscription_bounds.*
    from subscription_bounds
    inner join months
        on months.month_start_date >= subscription_bounds.first_month_start_date
        and months.month_start_date <= subscription_bounds.last_month_start_date

),

final as (

    select
        subscription_months.subscription_id,
        subscription_months.month_start_date,
        subscription_months.month_end_date,
        subscription_months.account_id,
        subscription_months.customer_id,
        subscription_months.product_id,
        subscription_months.previous_subscription_id,
        subscription_months.plan_name,
        subscription_months.subscription_status,
        subscription_months.started_date,
        subscription_months.ended_date,
        subscription_months.currency_code,
        subscription_months.mrr_amount,
        fx_rates.reporting_currency,
        fx_rates.fx_rate_date,
        fx_rates.fx_rate_to_reporting,
        {{ to_reporting('subscription_months.mrr_amount', 'fx_rates.fx_rate_to_reporting') }} as mrr_amount_reporting,
        -- running at the end of the month's last day (a renewal ends one term and starts the
        -- next at the same instant, so exactly one of them is active then)
        subscription_months.started_date <= subscription_months.month_end_date
            and (subscription_months.ended_date is null
                 or subscription_months.ended_date > subscription_months.month_end_date) as is_active_at_month_end,
        subscription_months.month_start_date = cast({{ dbt.date_trunc('month', 'subscription_months.started_date') }} as date) as is_start_month,
        subscription_months.is_deleted,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from subscription_months
    left join fx_rates
        on fx_rates.currency_code = subscription_months.currency_code
        and fx_rates.month_start_date = subscription_months.month_start_date

)

select * from final
