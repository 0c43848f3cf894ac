-- the refunds that reduced revenue at the end of the as-of day (macro as_of_date): refunded on or
-- before it, not deleted on that day by their type-2 history, of a revenue order of
-- int_orders__revenue_as_of. Found once per run for int_customers__revenue_as_of,
-- mart_cohort_retention and mart_ltv_cohorts, which each joined the refunds to the ~900k revenue
-- orders. Part of the marts build (tag as_of, transform.MARTS) like int_orders__revenue_as_of, and
-- incremental like it: a run rewrites the refunds whose own state or whose order's changed
-- depends_on: {{ ref('fct_orders') }}
-- depends_on: {{ ref('int_orders__historized') }}
{{ as_of_incremental('refund_id', 'revenue_refunds_changed', extra_indexes=[{'columns': ['customer_id']}]) }}
{%- set window = as_of_window() %}
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

revenue_orders as (

    select * from {{ ref('int_orders__revenue_as_of') }}

),

revenue_refunds as (

    select refunds.*
    from {{ ref('fct_refunds') }} as refunds
    cross join as_of as as_of_day
    inner join {{ ref('int_refunds__historized') }} as refund_states
        on refund_states.refund_id = refunds.refund_id
        and {{ customers_is_valid_on('refund_states', 'as_of_day.as_of_date') }}
    inner join revenue_orders as refunded_orders
        on refunded_orders.order_id = refunds.order_id
    where not refund_states.is_deleted
      and refunds.refunded_date <= as_of_day.as_of_date
      {%- if window is not none %}
      and refunds.refund_id = any(array({{ revenue_refunds_changed(window) }}))
      {%- endif %}

),

final as (

    select
        revenue_refunds.refund_id,
        revenue_refunds.order_id,
        revenue_refunds.customer_id,
        revenue_refunds.refunded_date,
        revenue_refunds.refund_amount,
        revenue_refunds.refund_amount_reporting,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from revenue_refunds

)

select * from final
