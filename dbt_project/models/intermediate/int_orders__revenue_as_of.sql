-- the orders that were revenue orders at the end of the as-of day (macro as_of_date): placed on or
-- before it and, by their type-2 history, neither cancelled nor deleted on that day. Built once per
-- run for the six customer marts, each of which joined fct_orders to the order history itself
-- (~3 s a mart at scale 10). Part of the marts build (tag as_of, transform.MARTS), not of the core
-- build, so it is always built with the marts' vars: an as-of rebuild of the marts rebuilds it for that
-- date first. Incremental across as-of days (macros/as_of_incremental.sql): a run rewrites the orders
-- that changed upstream or that a date between the last build's day and this one reaches.
{{ as_of_incremental('order_id', 'revenue_orders_changed', extra_indexes=[{'columns': ['customer_id']}]) }}
{%- set window = as_of_window() %}
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_date,
        orders.currency_code,
        orders.net_amount,
        orders.net_amount_reporting,
        orders.cost_amount_reporting,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from {{ ref('fct_orders') }} as orders
    cross join as_of
    inner join {{ ref('int_orders__historized') }} as order_states
        on order_states.order_id = orders.order_id
        and {{ customers_is_valid_on('order_states', 'as_of.as_of_date') }}
    where order_states.is_revenue_order
      and orders.ordered_date <= as_of.as_of_date
      {%- if window is not none %}
      and orders.order_id = any(array({{ revenue_orders_changed(window) }}))
      {%- endif %}

)

select * from final
