-- revenue per customer as of the as-of date (macro as_of_date): the customer's revenue orders
-- (int_orders__revenue_as_of) and the refunds reducing their revenue (int_refunds__revenue_as_of),
-- summed once per run for mart_customer_ltv, mart_customer_rfm, mart_customer_churn and
-- mart_cohort_retention, which each aggregated the ~900k orders and the refunds themselves. Part of
-- the marts build (tag as_of, transform.MARTS) like int_orders__revenue_as_of, so an as-of rebuild
-- of the marts rebuilds it for that date first. Incremental like them: a run rewrites the customers of
-- the orders and refunds whose revenue state changed
-- depends_on: {{ ref('int_loaded_dates__summarized') }}
-- depends_on: {{ ref('fct_orders') }}
-- depends_on: {{ ref('int_orders__historized') }}
-- depends_on: {{ ref('fct_refunds') }}
-- depends_on: {{ ref('int_refunds__historized') }}
-- depends_on: {{ source('crm', 'orders') }}
-- depends_on: {{ source('crm', 'refunds') }}
{{ as_of_incremental('customer_id', 'revenue_customers_changed') }}
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

customer_orders as (

    -- sorted by customer so the aggregate below runs on sorted rows: a hash aggregate of the ~900k
    -- orders keeps ~100k sets of numeric sums in memory and took twice as long (1.2 s vs 0.65 s at
    -- scale 10)
    select
        customer_id,
        ordered_date,
        currency_code,
        net_amount,
        net_amount_reporting,
        cost_amount_reporting
    from revenue_orders
    order by customer_id

),

order_summary as (

    -- min = max currency instead of count(distinct currency_code) = 1: the same test without
    -- sorting each customer's orders by currency
    select
        customer_id,
        count(*) as order_count,
        min(currency_code) as min_currency_code,
        max(currency_code) as max_currency_code,
        sum(net_amount) as order_revenue,
        sum(net_amount_reporting) as order_revenue_reporting,
        sum(coalesce(cost_amount_reporting, 0)) as cost_of_goods_reporting,
        min(ordered_date) as first_order_date,
        max(ordered_date) as last_order_date
    from customer_orders
    group by customer_id

),

refund_summary as (

    select
        customer_id,
        count(*) as refund_count,
        sum(refund_amount) as refund_amount,
        sum(refund_amount_reporting) as refund_amount_reporting
    from revenue_refunds
    group by customer_id

),

joined as (

    -- full join: a refund carries its order's customer, kept even if it ever differed
    select
        coalesce(order_summary.customer_id, refund_summary.customer_id) as customer_id,
        order_summary.min_currency_code = order_summary.max_currency_code as is_single_currency,
        order_summary.min_currency_code,
        coalesce(order_summary.order_count, 0) as order_count,
        order_summary.first_order_date,
        order_summary.last_order_date,
        order_summary.order_revenue,
        coalesce(order_summary.order_revenue_reporting, 0) as order_revenue_reporting,
        coalesce(order_summary.cost_of_goods_reporting, 0) as cost_of_goods_reporting,
        coalesce(refund_summary.refund_count, 0) as refund_count,
        refund_summary.refund_amount,
        coalesce(refund_summary.refund_amount_reporting, 0) as refund_amount_reporting
    from order_summary
    full outer join refund_summary
        on refund_summary.customer_id = order_summary.customer_id

),

final as (

    select
        joined.customer_id,
        joined.order_count,
        joined.first_order_date,
        joined.last_order_date,
        joined.refund_count,
        case when joined.is_single_currency then joined.min_currency_code end as currency_code,
        case when joined.is_single_currency then joined.order_revenue end as order_revenue,
        case when joined.is_single_currency then coalesce(joined.refund_amount, 0) end as refund_amount,
        joined.order_revenue_reporting,
        joined.refund_amount_reporting,
        joined.cost_of_goods_reporting,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from joined

)

select * from final
