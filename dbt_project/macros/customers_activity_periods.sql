{#- The customer-period rule of the churn marts, computed once per run in int_customers__activity_periods_as_of
    (read by mart_customer_churn and mart_churn_monthly). -#}

{#-
    CTEs (comma-separated, to be placed inside a with-chain) ending in `activity_periods`: one row per
    customer and uninterrupted period of being a customer, as of the as-of day.
      - Subscription customers (a subscription started on or before the day): a period runs from a
        term's start while terms follow each other without a gap (a renewal starts when the previous
        term ends); it ends (churn) when a term ends without a successor, on its ended_date.
      - Everyone else (the order rule, N = var churn_days): a period starts with a revenue order and
        continues while each next order comes within N days of the previous one; it ends (churn) on
        last order + N days when no order follows by then.
    churn_date is null while the period is still running at the end of the as-of day. A customer with
    more than one period returned after churning (reactivation).
    Also usable by the mart: `order_periods`, the order-rule periods of every customer with revenue
    orders (subscription customers included), whose order_count counts the customer's orders up to
    the period's last order.
-#}
{% macro customers_activity_periods(as_of, revenue_orders, subscriptions) -%}

order_gaps as (

    -- no distinct order days needed: a second order on the same day is 0 days after the first,
    -- so it never starts or ends a period
    select
        customer_id,
        ordered_date,
        lag(ordered_date) over customer_orders as previous_order_date,
        lead(ordered_date) over customer_orders as next_order_date,
        row_number() over customer_orders as order_number
    from {{ revenue_orders }}
    window customer_orders as (partition by customer_id order by ordered_date)

),

order_period_bounds as (

    -- only the first and the last order of each period, in order: start, end, start, end, ... (an
    -- order alone in its period is both); numbering periods on these rows instead of all orders
    -- saves a window and an aggregate over every order
    select
        customer_id,
        ordered_date,
        order_number,
        previous_order_date is null
            or {{ dbt.datediff('previous_order_date', 'ordered_date', 'day') }} > {{ var('churn_days') }} as is_period_start,
        next_order_date is null
            or {{ dbt.datediff('ordered_date', 'next_order_date', 'day') }} > {{ var('churn_days') }} as is_period_end
    from order_gaps

),

order_period_ends as (

    -- on a period's last order: its number (periods started so far) and its first order (the
    -- previous bound; a same-day start sorts before the end)
    select
        customer_id,
        ordered_date,
        order_number,
        is_period_end,
        sum(case when is_period_start then 1 else 0 end) over customer_bounds as period_number,
        case
            when is_period_start then ordered_date
            else lag(ordered_date) over customer_bounds
        end as period_start_date
    from order_period_bounds
    where is_period_start or is_period_end
    window customer_bounds as (
        partition by customer_id
        order by ordered_date, is_period_end
        rows between unbounded preceding and current row
    )

),

order_periods as (

    select
        customer_id,
        period_number,
        period_start_date,
        ordered_date as last_order_date,
        order_number as order_count
    from order_period_ends
    where is_period_end

),

subscription_terms as (

    -- a term ending after the as-of day was still running on it
    select
        subscriptions.customer_id,
        subscriptions.started_date,
        case
            when subscriptions.ended_date <= as_of_day.as_of_date then subscriptions.ended_date
            else cast('9999-12-31' as date)
        end as ended_date
    from {{ subscriptions }} as subscriptions
    cross join {{ as_of }} as as_of_day
    where subscriptions.customer_id is not null
      and not subscriptions.is_deleted
      and subscriptions.started_date <= as_of_day.as_of_date

),

subscription_gaps as (

    select
        customer_id,
        started_date,
        ended_date,
        max(ended_date) over (
            partition by customer_id
            order by started_date, ended_date
            rows between unbounded preceding and 1 preceding
        ) as previous_max_ended_date
    from subscription_terms

),

subscription_islands as (

    select
        *,
        sum(
            case
                when previous_max_ended_date is null or started_date > previous_max_ended_date then 1
                else 0
            end
        ) over (
            partition by customer_id
            order by started_date, ended_date
            rows between unbounded preceding and current row
        ) as period_number
    from subscription_gaps

),

subscription_periods as (

    select
        customer_id,
        period_number,
        min(started_date) as period_start_date,
        max(ended_date) as period_end_date
    from subscription_islands
    group by customer_id, period_number

),

subscription_customers as (

    select distinct customer_id from subscription_terms

),

activity_periods as (

    select
        customer_id,
        cast(period_number as integer) as period_number,
        'subscription' as churn_rule,
        period_start_date,
        cast(null as date) as last_order_date,
        case when period_end_date < cast('9999-12-31' as date) then period_end_date end as churn_date
    from subscription_periods

    union all

    select
        order_periods.customer_id,
        cast(order_periods.period_number as integer) as period_number,
        'orders' as churn_rule,
        order_periods.period_start_date,
        order_periods.last_order_date,
        case
            when cast({{ dbt.dateadd('day', var('churn_days'), 'order_periods.last_order_date') }} as date) <= as_of_day.as_of_date
                then cast({{ dbt.dateadd('day', var('churn_days'), 'order_periods.last_order_date') }} as date)
        end as churn_date
    from order_periods
    cross join {{ as_of }} as as_of_day
    left join subscription_customers
        on subscription_customers.customer_id = order_periods.customer_id
    where subscription_customers.customer_id is null

)

{%- endmacro %}
