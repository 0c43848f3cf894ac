-- the orders that were revenue orders at the end of the as-of day (macro as_of_date): placed on or
-- before it and, by their type-2 history, neither cancelled nor deleted on that day. Built once per
-- run for the six customer marts, each of which joined fct_orders to the order history itself
-- (~3 s a mart at scale 10). Part of the marts build (transform.MARTS), not of the core build, so it is
-- always built with the marts' vars: an as-of rebuild of the marts rebuilds it for that date first.
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

revenue_orders as (

    {{ customers_revenue_orders('as_of') }}

),

final as (

    select
        revenue_orders.order_id,
        revenue_orders.customer_id,
        revenue_orders.ordered_date,
        revenue_orders.currency_code,
        revenue_orders.net_amount,
        revenue_orders.net_amount_reporting,
        revenue_orders.cost_amount_reporting,
        as_of.as_of_date
    from revenue_orders
    cross join as_of

)

select * from final
