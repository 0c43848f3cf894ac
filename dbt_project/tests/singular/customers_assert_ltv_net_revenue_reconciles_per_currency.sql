-- reconciliation: per currency, the net revenue in mart_customer_ltv (in the order currency and in
-- the reporting currency) equals the revenue orders of fct_orders minus the revenue refunds of
-- fct_refunds dated on or before the mart's as_of_date. fct_* carry today's flags, which describe
-- the as-of day only when it is the latest loaded day, so the check runs for such builds (a past
-- as_of_date is covered by the rebuild comparison and the history-based unit tests).
-- Returns the currencies that differ.
with

ltv as (

    select * from {{ ref('mart_customer_ltv') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

refunds as (

    select * from {{ ref('fct_refunds') }}

),

loaded as (

    select latest_loaded_date from {{ ref('int_loaded_dates__summarized') }}

),

as_of as (

    select max(ltv.as_of_date) as as_of_date
    from ltv
    cross join loaded
    having max(ltv.as_of_date) >= max(loaded.latest_loaded_date)

),

mart_totals as (

    select
        currency_code,
        sum(net_revenue) as net_revenue,
        sum(net_revenue_reporting) as net_revenue_reporting
    from ltv
    where order_count > 0
    group by currency_code

),

order_totals as (

    select
        orders.currency_code,
        sum(orders.net_amount) as order_revenue,
        sum(orders.net_amount_reporting) as order_revenue_reporting
    from orders
    inner join as_of
        on orders.ordered_date <= as_of.as_of_date
    where orders.is_revenue_order
    group by orders.currency_code

),

refund_totals as (

    select
        refunds.currency_code,
        sum(refunds.refund_amount) as refund_amount,
        sum(refunds.refund_amount_reporting) as refund_amount_reporting
    from refunds
    inner join as_of
        on refunds.refunded_date <= as_of.as_of_date
    where refunds.is_revenue_refund
    group by refunds.currency_code

),

fact_totals as (

    select
        order_totals.currency_code,
        order_totals.order_revenue - coalesce(refund_totals.refund_amount, 0) as net_revenue,
        order_totals.order_revenue_reporting - coalesce(refund_totals.refund_amount_reporting, 0) as net_revenue_reporting
    from order_totals
    left join refund_totals
        on refund_totals.currency_code = order_totals.currency_code

),

final as (

    select
        coalesce(mart_totals.currency_code, fact_totals.currency_code) as currency_code,
        mart_totals.net_revenue as mart_net_revenue,
        fact_totals.net_revenue as fact_net_revenue,
        mart_totals.net_revenue_reporting as mart_net_revenue_reporting,
        fact_totals.net_revenue_reporting as fact_net_revenue_reporting
    from mart_totals
    full outer join fact_totals
        on fact_totals.currency_code = mart_totals.currency_code
    where exists (select 1 from as_of)
      and (mart_totals.net_revenue is distinct from fact_totals.net_revenue
        or mart_totals.net_revenue_reporting is distinct from fact_totals.net_revenue_reporting)

)

select * from final
