-- churn status per customer as of the as-of date (rule: macro customers_activity_periods).
-- Subscription customers churn when a term ends without a successor; everyone else churns N =
-- var churn_days days after their last revenue order and is at_risk from M = var at_risk_days
{{ config(
    indexes=[
        {'columns': ['customer_id'], 'unique': true},
        {'columns': ['churn_status']},
        {'columns': ['churn_date']},
    ]
) }}

with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

customers as (

    {{ customers_as_of('as_of') }}

),

-- per-customer order counts and dates, summed once per run for several marts
customer_revenue as (

    select * from {{ ref('int_customers__revenue_as_of') }}

),

-- the customer periods (rule: macro customers_activity_periods), found once per run for both churn marts
activity_periods as (

    select * from {{ ref('int_customers__activity_periods_as_of') }}

),

churn_risk as (

    select * from {{ source('ml', 'customer_churn_risk') }}

),

period_summary as (

    select
        customer_id,
        max(churn_rule) as churn_rule,
        count(*) as period_count,
        max(period_number) as latest_period_number
    from activity_periods
    group by customer_id

),

latest_periods as (

    select
        activity_periods.customer_id,
        activity_periods.period_start_date,
        activity_periods.churn_date
    from activity_periods
    inner join period_summary
        on period_summary.customer_id = activity_periods.customer_id
        and period_summary.latest_period_number = activity_periods.period_number

),

recency as (

    select
        as_of.as_of_date,
        customers.customer_id,
        customers.segment,
        customers.acquisition_channel,
        customers.signed_up_date,
        coalesce(customer_revenue.order_count, 0) as order_count,
        customer_revenue.first_order_date,
        customer_revenue.last_order_date,
        {{ dbt.datediff('customer_revenue.last_order_date', 'as_of.as_of_date', 'day') }} as days_since_last_order,
        coalesce(period_summary.churn_rule, 'orders') as churn_rule,
        coalesce(period_summary.period_count, 0) as period_count,
        latest_periods.period_start_date as current_period_start_date,
        latest_periods.churn_date as latest_churn_date,
        customers.is_deleted
    from customers
    cross join as_of
    left join customer_revenue
        on customer_revenue.customer_id = customers.customer_id
    left join period_summary
        on period_summary.customer_id = customers.customer_id
    left join latest_periods
        on latest_periods.customer_id = customers.customer_id

),

classified as (

    select
        *,
        case
            when period_count = 0 then 'never_ordered'
            when latest_churn_date is not null then 'churned'
            when churn_rule = 'orders' and days_since_last_order >= {{ var('at_risk_days') }} then 'at_risk'
            else 'active'
        end as churn_status
    from recency

),

final as (

    select
        classified.as_of_date,
        classified.customer_id,
        classified.segment,
        classified.acquisition_channel,
        classified.signed_up_date,
        classified.order_count,
        classified.first_order_date,
        classified.last_order_date,
        classified.days_since_last_order,
        classified.churn_rule,
        classified.churn_rule = 'subscription' as is_subscription_customer,
        classified.churn_status,
        classified.churn_status = 'active' as is_active,
        classified.churn_status = 'at_risk' as is_at_risk,
        classified.churn_status = 'churned' as is_churned,
        case when classified.churn_status = 'churned' then classified.latest_churn_date end as churn_date,
        classified.period_count as customer_period_count,
        classified.period_count > 1 as is_reactivated,
        case when classified.period_count > 1 then classified.current_period_start_date end as reactivated_date,
        {{ var('at_risk_days') }} as at_risk_days,
        {{ var('churn_days') }} as churn_days,
        classified.is_deleted,
        -- predictive churn risk (python model) for this as-of date, null until scored
        churn_risk.churn_risk_score,
        churn_risk.churn_risk_band
    from classified
    left join churn_risk
        on churn_risk.customer_id = classified.customer_id
        and churn_risk.as_of_date = classified.as_of_date

)

select * from final
