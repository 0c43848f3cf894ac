-- the customer periods as of the as-of date (macro as_of_date) by the rule of macro
-- customers_activity_periods, computed once per run for mart_customer_churn and mart_churn_monthly,
-- which each sorted the ~900k revenue orders to find them. Part of the marts build (tag as_of,
-- transform.MARTS) like int_orders__revenue_as_of, so an as-of rebuild of the marts rebuilds it for
-- that date first. Incremental like it (macros/as_of_incremental.sql): a run rewrites the customers
-- whose revenue orders or subscriptions changed, or whose period a date between the last build's day
-- and this one ends or starts
-- depends_on: {{ ref('fct_orders') }}
-- depends_on: {{ ref('int_orders__historized') }}
-- depends_on: {{ ref('fct_refunds') }}
-- depends_on: {{ ref('int_refunds__historized') }}
-- depends_on: {{ source('crm', 'orders') }}
-- depends_on: {{ source('crm', 'refunds') }}
-- depends_on: {{ source('crm', 'subscriptions') }}
{{ as_of_incremental('customer_id', 'activity_customers_changed', unique_columns=['customer_id', 'period_number']) }}
{%- set window = as_of_window() %}
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),
{%- if window is not none %}

changed_customers as (

    {{ activity_customers_changed(window) }}

),
{%- endif %}

revenue_orders as (

    select * from {{ ref('int_orders__revenue_as_of') }}
    {%- if window is not none %}
    where customer_id = any(array(select customer_id from changed_customers))
    {%- endif %}

),

subscriptions as (

    select * from {{ ref('stg_crm__subscriptions') }}
    {%- if window is not none %}
    -- a hash semi-join: = any(array) without an index compares each row with every key
    where customer_id in (select customer_id from changed_customers)
    {%- endif %}

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
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from activity_periods

)

select * from final
