-- customer churn per calendar month up to the as-of date, from the customer periods of
-- macro customers_activity_periods (the same rule as mart_customer_churn). The running month is
-- counted up to the as-of date
{{ config(
    indexes=[
        {'columns': ['month_start_date'], 'unique': true},
    ]
) }}

with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

revenue_orders as (

    select * from {{ ref('int_orders__revenue_as_of') }}

),

subscriptions as (

    select * from {{ ref('stg_crm__subscriptions') }}

),

calendar as (

    select * from {{ ref('dim_date') }}

),

{{ customers_activity_periods('as_of', 'revenue_orders', 'subscriptions') }},

months as (

    select distinct
        calendar.month_start_date,
        calendar.month_end_date,
        case
            when calendar.month_end_date > as_of.as_of_date then as_of.as_of_date
            else calendar.month_end_date
        end as period_end_date
    from calendar
    cross join as_of
    where calendar.month_start_date <= as_of.as_of_date
      and calendar.month_end_date >= (select min(period_start_date) from activity_periods)

),

counted as (

    select
        months.month_start_date,
        months.month_end_date,
        months.period_end_date,
        -- a customer at the start was in a period at the end of the day before the month
        count(case
            when activity_periods.period_start_date < months.month_start_date
             and (activity_periods.churn_date is null or activity_periods.churn_date >= months.month_start_date)
                then 1
        end) as customers_at_start,
        count(case
            when activity_periods.period_start_date < months.month_start_date
             and activity_periods.churn_date between months.month_start_date and months.period_end_date
                then 1
        end) as churned_customers,
        count(case
            when activity_periods.period_number = 1
             and activity_periods.period_start_date between months.month_start_date and months.period_end_date
                then 1
        end) as new_customers,
        count(case
            when activity_periods.period_number > 1
             and activity_periods.period_start_date between months.month_start_date and months.period_end_date
                then 1
        end) as reactivated_customers,
        count(case
            when activity_periods.churn_date between months.month_start_date and months.period_end_date
                then 1
        end) as churned_customers_total,
        count(case
            when activity_periods.period_start_date <= months.period_end_date
             and (activity_periods.churn_date is null or activity_periods.churn_date > months.period_end_date)
                then 1
        end) as customers_at_end
    from months
    cross join activity_periods
    group by
        months.month_start_date,
        months.month_end_date,
        months.period_end_date

),

final as (

    select
        as_of.as_of_date,
        counted.month_start_date,
        counted.month_end_date,
        counted.period_end_date,
        counted.period_end_date < counted.month_end_date as is_partial_month,
        counted.customers_at_start,
        counted.new_customers,
        counted.reactivated_customers,
        counted.churned_customers,
        counted.churned_customers_total,
        counted.customers_at_end,
        round({{ safe_divide('counted.churned_customers', 'counted.customers_at_start') }}, 4) as churn_rate,
        round({{ safe_divide('counted.customers_at_start - counted.churned_customers', 'counted.customers_at_start') }}, 4) as retention_rate
    from counted
    cross join as_of

)

select * from final
