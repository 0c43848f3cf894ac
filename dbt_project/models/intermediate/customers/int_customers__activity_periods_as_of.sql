-- the customer periods as of the as-of date (macro as_of_date) by the rule of macro
-- customers_activity_periods, computed once per run for mart_customer_churn and mart_churn_monthly,
-- which each sorted the ~900k revenue orders to find them. Part of the marts build (tag as_of,
-- transform.MARTS) like int_orders__revenue_as_of, so an as-of rebuild of the marts rebuilds it for
-- that date first
{{ config(tags=['as_of']) }}
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

{{ customers_activity_periods('as_of', 'revenue_orders', 'subscriptions') }},

final as (

    select
        activity_periods.customer_id,
        activity_periods.period_number,
        activity_periods.churn_rule,
        activity_periods.period_start_date,
        activity_periods.last_order_date,
        activity_periods.churn_date,
        as_of.as_of_date
    from activity_periods
    cross join as_of

)

select * from final
