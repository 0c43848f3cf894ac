-- churn status per customer as of the as-of date. The rule, with N = var churn_days and
-- M = var at_risk_days: churned when the last revenue order is N or more days old (no order in
-- the last N days), at_risk when it is M or more days old, otherwise active
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

customers as (

    select * from {{ ref('dim_customer') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

order_summary as (

    select
        orders.customer_id,
        count(*) as order_count,
        min(orders.ordered_date) as first_order_date,
        max(orders.ordered_date) as last_order_date
    from orders
    cross join as_of
    where orders.is_revenue_order
      and orders.ordered_date <= as_of.as_of_date
    group by orders.customer_id

),

recency as (

    select
        as_of.as_of_date,
        customers.customer_id,
        customers.segment,
        customers.signed_up_date,
        coalesce(order_summary.order_count, 0) as order_count,
        order_summary.first_order_date,
        order_summary.last_order_date,
        {{ dbt.datediff('order_summary.last_order_date', 'as_of.as_of_date', 'day') }} as days_since_last_order,
        customers.is_deleted
    from customers
    cross join as_of
    left join order_summary
        on order_summary.customer_id = customers.customer_id
    where customers.signed_up_date <= as_of.as_of_date
       or order_summary.customer_id is not null

),

classified as (

    select
        *,
        case
            when last_order_date is null then 'never_ordered'
            when days_since_last_order >= {{ var('churn_days') }} then 'churned'
            when days_since_last_order >= {{ var('at_risk_days') }} then 'at_risk'
            else 'active'
        end as churn_status
    from recency

),

final as (

    select
        as_of_date,
        customer_id,
        segment,
        signed_up_date,
        order_count,
        first_order_date,
        last_order_date,
        days_since_last_order,
        churn_status,
        churn_status = 'active' as is_active,
        churn_status = 'at_risk' as is_at_risk,
        churn_status = 'churned' as is_churned,
        -- the first day without an order in the last churn_days days
        case
            when churn_status = 'churned' then
                cast({{ dbt.dateadd('day', var('churn_days'), 'last_order_date') }} as date)
        end as churn_date,
        {{ var('at_risk_days') }} as at_risk_days,
        {{ var('churn_days') }} as churn_days,
        is_deleted
    from classified

)

select * from final
