-- revenue per customer and calendar month as of the as-of date (macro as_of_date): the customer's
-- revenue orders (int_orders__revenue_as_of) by the month ordered and the refunds reducing their
-- revenue (int_refunds__revenue_as_of) by the month refunded. Read by mart_cohort_retention and
-- mart_ltv_cohorts, which each grouped the ~900k revenue orders by customer and month (about 1.0 and
-- 0.45 s of their selects at scale 10; these ~420k rows are kept up to date instead). Part of the marts
-- build (tag as_of, transform.MARTS) like int_customers__revenue_as_of, and incremental like it: a run
-- rewrites every month of the customers whose revenue orders or refunds changed
-- depends_on: {{ ref('int_loaded_dates__summarized') }}
-- depends_on: {{ ref('fct_orders') }}
-- depends_on: {{ ref('int_orders__historized') }}
-- depends_on: {{ ref('fct_refunds') }}
-- depends_on: {{ ref('int_refunds__historized') }}
-- depends_on: {{ source('crm', 'orders') }}
-- depends_on: {{ source('crm', 'refunds') }}
{{ as_of_incremental('customer_id', 'revenue_customers_changed', unique_columns=['customer_id', 'revenue_month']) }}
{%- set window = as_of_window() %}
with
{%- if window is not none %}

changed_customers as (

    {{ revenue_customers_changed(window) }}

),
{%- endif %}

revenue_orders as (

    select * from {{ ref('int_orders__revenue_as_of') }}
    {%- if window is not none %}
    where customer_id = any(array(select customer_id from changed_customers))
    {%- endif %}

),

revenue_refunds as (

    select * from {{ ref('int_refunds__revenue_as_of') }}
    {%- if window is not none %}
    where customer_id = any(array(select customer_id from changed_customers))
    {%- endif %}

),

monthly_orders as (

    -- the date truncated as a timestamp: on a date, date_trunc converts it to timestamptz first, a
    -- time-zone lookup per order
    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'cast(ordered_date as ' ~ dbt.type_timestamp() ~ ')') }} as date) as revenue_month,
        count(*) as order_count,
        sum(net_amount_reporting) as order_revenue_reporting
    from revenue_orders
    group by 1, 2

),

monthly_refunds as (

    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'cast(refunded_date as ' ~ dbt.type_timestamp() ~ ')') }} as date) as revenue_month,
        count(*) as refund_count,
        sum(refund_amount_reporting) as refund_amount_reporting
    from revenue_refunds
    group by 1, 2

),

final as (

    -- full join: a month with refunds and no order is a row, as is a month with orders and no refund
    select
        coalesce(monthly_orders.customer_id, monthly_refunds.customer_id) as customer_id,
        coalesce(monthly_orders.revenue_month, monthly_refunds.revenue_month) as revenue_month,
        coalesce(monthly_orders.order_count, 0) as order_count,
        coalesce(monthly_orders.order_revenue_reporting, 0) as order_revenue_reporting,
        coalesce(monthly_refunds.refund_count, 0) as refund_count,
        coalesce(monthly_refunds.refund_amount_reporting, 0) as refund_amount_reporting,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from monthly_orders
    full outer join monthly_refunds
        on monthly_refunds.customer_id = monthly_orders.customer_id
        and monthly_refunds.revenue_month = monthly_orders.revenue_month

)

select * from final
