-- the refunds that reduced revenue at the end of the as-of day (macro as_of_date, rule: macro
-- customers_revenue_refunds): refunded on or before it, not deleted on that day, of a revenue order
-- of int_orders__revenue_as_of. Found once per run for int_customers__revenue_as_of,
-- mart_cohort_retention and mart_ltv_cohorts, which each joined the refunds to the ~900k revenue
-- orders. Part of the marts build (tag as_of, transform.MARTS) like int_orders__revenue_as_of
{{ config(tags=['as_of']) }}
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

revenue_orders as (

    select * from {{ ref('int_orders__revenue_as_of') }}

),

revenue_refunds as (

    {{ customers_revenue_refunds('as_of', 'revenue_orders') }}

),

final as (

    select
        revenue_refunds.refund_id,
        revenue_refunds.order_id,
        revenue_refunds.customer_id,
        revenue_refunds.refunded_date,
        revenue_refunds.refund_amount,
        revenue_refunds.refund_amount_reporting,
        as_of.as_of_date
    from revenue_refunds
    cross join as_of

)

select * from final
