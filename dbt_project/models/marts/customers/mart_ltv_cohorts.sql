-- acquisition cohorts as of the as-of date: customers grouped by sign-up month and acquisition
-- channel, with cumulative net revenue per customer by months since acquisition (0 = the sign-up
-- month) and LTV:CAC, CAC = the channel's campaign spend in the acquisition month / the customers
-- the channel acquired that month (paid channels only)
{{ config(
    indexes=[
        {'columns': ['acquisition_month', 'acquisition_channel', 'months_since_acquisition'], 'unique': true},
        {'columns': ['acquisition_channel']},
        {'columns': ['months_since_acquisition']},
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

customer_months as (

    -- revenue orders and refunds summed per customer and month once, kept up to date across days
    select * from {{ ref('int_customers__monthly_revenue_as_of') }}

),

spend as (

    select * from {{ ref('fct_marketing_spend') }}

),

campaigns as (

    select * from {{ ref('dim_campaign') }}

),

calendar as (

    select distinct month_start_date from {{ ref('dim_date') }}

),

customer_cohorts as (

    select
        customers.customer_id,
        customers.acquisition_channel,
        cast({{ dbt.date_trunc('month', 'customers.signed_up_date') }} as date) as acquisition_month
    from customers
    cross join as_of
    where customers.signed_up_date <= as_of.as_of_date

),

cohort_sizes as (

    select
        acquisition_month,
        acquisition_channel,
        count(*) as cohort_customers
    from customer_cohorts
    group by acquisition_month, acquisition_channel

),

channel_spend as (

    select
        cast({{ dbt.date_trunc('month', 'spend.spend_date') }} as date) as spend_month,
        campaigns.campaign_channel as acquisition_channel,
        sum(spend.spend_amount_reporting) as spend_reporting
    from spend
    cross join as_of
    inner join campaigns
        on campaigns.campaign_id = spend.campaign_id
    where not spend.is_deleted
      and spend.spend_date <= as_of.as_of_date
    group by 1, 2

),

monthly_revenue as (

    select
        customer_cohorts.acquisition_month,
        customer_cohorts.acquisition_channel,
        customer_months.revenue_month,
        sum(customer_months.order_revenue_reporting - customer_months.refund_amount_reporting) as net_revenue_reporting
    from customer_months
    inner join customer_cohorts
        on customer_cohorts.customer_id = customer_months.customer_id
    group by 1, 2, 3

),

cohort_months as (

    select
        cohort_sizes.acquisition_month,
        cohort_sizes.acquisition_channel,
        cohort_sizes.cohort_customers,
        calendar.month_start_date as revenue_month,
        {{ dbt.datediff('cohort_sizes.acquisition_month', 'calendar.month_start_date', 'month') }} as months_since_acquisition
    from cohort_sizes
    cross join as_of
    inner join calendar
        on calendar.month_start_date >= cohort_sizes.acquisition_month
        and calendar.month_start_date <= as_of.as_of_date

),

cumulated as (

    select
        cohort_months.*,
        coalesce(monthly_revenue.net_revenue_reporting, 0) as net_revenue_reporting,
        sum(coalesce(monthly_revenue.net_revenue_reporting, 0)) over (
            partition by cohort_months.acquisition_month, cohort_months.acquisition_channel
            order by cohort_months.months_since_acquisition
            rows between unbounded preceding and current row
        ) as cumulative_net_revenue_reporting
    from cohort_months
    left join monthly_revenue
        on monthly_revenue.acquisition_month = cohort_months.acquisition_month
        and monthly_revenue.acquisition_channel = cohort_months.acquisition_channel
        and monthly_revenue.revenue_month = cohort_months.revenue_month

),

with_cac as (

    select
        cumulated.*,
        channel_spend.spend_reporting as acquisition_spend_reporting,
        round({{ safe_divide('channel_spend.spend_reporting', 'cumulated.cohort_customers') }}, 2) as cac_reporting,
        round({{ safe_divide('cumulated.cumulative_net_revenue_reporting', 'cumulated.cohort_customers') }}, 2) as cumulative_revenue_per_customer_reporting
    from cumulated
    left join channel_spend
        on channel_spend.spend_month = cumulated.acquisition_month
        and channel_spend.acquisition_channel = cumulated.acquisition_channel

),

final as (

    select
        as_of.as_of_date,
        with_cac.acquisition_month,
        with_cac.acquisition_channel,
        with_cac.revenue_month,
        cast(with_cac.months_since_acquisition as integer) as months_since_acquisition,
        with_cac.cohort_customers,
        {{ reporting_currency() }} as reporting_currency,
        with_cac.net_revenue_reporting,
        with_cac.cumulative_net_revenue_reporting,
        with_cac.cumulative_revenue_per_customer_reporting,
        with_cac.acquisition_spend_reporting,
        with_cac.cac_reporting,
        -- cumulative revenue per customer / CAC = cumulative cohort revenue / acquisition spend
        round({{ safe_divide('with_cac.cumulative_net_revenue_reporting', 'with_cac.acquisition_spend_reporting') }}, 4) as ltv_to_cac_ratio,
        with_cac.acquisition_spend_reporting is not null as has_cac
    from with_cac
    cross join as_of

)

select * from final
