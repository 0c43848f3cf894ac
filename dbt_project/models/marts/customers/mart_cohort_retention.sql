-- cohort retention as of the as-of date: customers grouped by the month of their first revenue
-- order, followed month by month (months_since_first_order 0 = the first-order month) up to the
-- as-of month: share of the cohort that ordered in the month and net revenue per cohort customer
{{ config(
    indexes=[
        {'columns': ['cohort_month', 'months_since_first_order'], 'unique': true},
        {'columns': ['months_since_first_order']},
    ]
) }}

with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

customer_months as (

    -- revenue orders and refunds summed per customer and month once, kept up to date across days
    select * from {{ ref('int_customers__monthly_revenue_as_of') }}

),

calendar as (

    select distinct month_start_date from {{ ref('dim_date') }}

),

customer_revenue as (

    select * from {{ ref('int_customers__revenue_as_of') }}

),

customer_cohorts as (

    -- the first order dates summed once per run for several marts (no aggregate over all orders here)
    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'first_order_date') }} as date) as cohort_month
    from customer_revenue
    where order_count > 0

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as cohort_customers
    from customer_cohorts
    group by cohort_month

),

cohort_months as (

    select
        cohort_sizes.cohort_month,
        cohort_sizes.cohort_customers,
        calendar.month_start_date as activity_month,
        {{ dbt.datediff('cohort_sizes.cohort_month', 'calendar.month_start_date', 'month') }} as months_since_first_order
    from cohort_sizes
    cross join as_of
    inner join calendar
        on calendar.month_start_date >= cohort_sizes.cohort_month
        and calendar.month_start_date <= as_of.as_of_date

),

monthly_revenue as (

    -- one row per customer and month: a customer with an order in the month is active in it
    select
        customer_cohorts.cohort_month,
        customer_months.revenue_month as activity_month,
        count(case when customer_months.order_count > 0 then 1 end) as active_customers,
        sum(customer_months.order_count) as order_count,
        sum(customer_months.order_revenue_reporting) as order_revenue_reporting,
        sum(customer_months.refund_amount_reporting) as refund_amount_reporting
    from customer_months
    inner join customer_cohorts
        on customer_cohorts.customer_id = customer_months.customer_id
    group by 1, 2

),

joined as (

    select
        cohort_months.cohort_month,
        cohort_months.activity_month,
        cohort_months.months_since_first_order,
        cohort_months.cohort_customers,
        coalesce(monthly_revenue.active_customers, 0) as active_customers,
        coalesce(monthly_revenue.order_count, 0) as order_count,
        coalesce(monthly_revenue.order_revenue_reporting, 0) as order_revenue_reporting,
        coalesce(monthly_revenue.refund_amount_reporting, 0) as refund_amount_reporting
    from cohort_months
    left join monthly_revenue
        on monthly_revenue.cohort_month = cohort_months.cohort_month
        and monthly_revenue.activity_month = cohort_months.activity_month

),

cumulated as (

    select
        *,
        order_revenue_reporting - refund_amount_reporting as net_revenue_reporting,
        sum(order_revenue_reporting - refund_amount_reporting) over (
            partition by cohort_month
            order by months_since_first_order
            rows between unbounded preceding and current row
        ) as cumulative_net_revenue_reporting
    from joined

),

final as (

    select
        as_of.as_of_date,
        cumulated.cohort_month,
        cumulated.activity_month,
        cast(cumulated.months_since_first_order as integer) as months_since_first_order,
        cumulated.activity_month > as_of.as_of_date
            or cast({{ dbt.last_day('cumulated.activity_month', 'month') }} as date) > as_of.as_of_date as is_partial_month,
        cumulated.cohort_customers,
        cumulated.active_customers,
        round({{ safe_divide('cumulated.active_customers', 'cumulated.cohort_customers') }}, 4) as active_share,
        cumulated.order_count,
        {{ reporting_currency() }} as reporting_currency,
        cumulated.order_revenue_reporting,
        cumulated.refund_amount_reporting,
        cumulated.net_revenue_reporting,
        round({{ safe_divide('cumulated.net_revenue_reporting', 'cumulated.cohort_customers') }}, 2) as revenue_per_customer_reporting,
        cumulated.cumulative_net_revenue_reporting,
        round({{ safe_divide('cumulated.cumulative_net_revenue_reporting', 'cumulated.cohort_customers') }}, 2) as cumulative_revenue_per_customer_reporting
    from cumulated
    cross join as_of

)

select * from final
