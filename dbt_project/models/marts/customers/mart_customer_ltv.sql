-- lifetime value per customer as of the as-of date: realised value (net revenue, gross margin,
-- orders, AOV, tenure, tier, decile) plus the predictive scores of the python model
-- (ml.customer_ltv_scores) for the same as-of date, null until the model has scored it
{{ config(
    indexes=[
        {'columns': ['customer_id'], 'unique': true},
        {'columns': ['value_tier']},
        {'columns': ['acquisition_channel']},
        {'columns': ['segment']},
        {'columns': ['clv_12m desc nulls last']},
    ]
) }}

with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

customers as (

    {{ customers_as_of('as_of') }}

),

-- not materialized: read here and in the refunds macro, postgres would otherwise materialize all
-- 900k rows (spilling to disk) and join the refunds to them; inlined, the aggregates read the
-- table and each refund probes its order_id index (0.4-0.6 s less at scale 10)
revenue_orders as not materialized (

    select * from {{ ref('int_orders__revenue_as_of') }}

),

revenue_refunds as (

    {{ customers_revenue_refunds('as_of', 'revenue_orders') }}

),

ltv_scores as (

    select * from {{ source('ml', 'customer_ltv_scores') }}

),

order_summary as (

    select
        revenue_orders.customer_id,
        count(*) as order_count,
        count(distinct revenue_orders.currency_code) as currency_count,
        min(revenue_orders.currency_code) as currency_code,
        sum(revenue_orders.net_amount) as order_revenue,
        sum(revenue_orders.net_amount_reporting) as order_revenue_reporting,
        sum(coalesce(revenue_orders.cost_amount_reporting, 0)) as cost_of_goods_reporting,
        min(revenue_orders.ordered_date) as first_order_date,
        max(revenue_orders.ordered_date) as last_order_date
    from revenue_orders
    group by revenue_orders.customer_id

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

customer_values as (

    select
        as_of.as_of_date,
        customers.customer_id,
        customers.segment,
        customers.country_code,
        customers.acquisition_channel,
        customers.signed_up_date,
        order_summary.first_order_date,
        order_summary.last_order_date,
        {{ dbt.datediff('order_summary.first_order_date', 'as_of.as_of_date', 'day') }} as tenure_days,
        {{ dbt.datediff('customers.signed_up_date', 'as_of.as_of_date', 'day') }} as customer_age_days,
        coalesce(order_summary.order_count, 0) as order_count,
        coalesce(refund_summary.refund_count, 0) as refund_count,
        -- amounts in the order currency exist only when all the customer's orders share one currency
        case when order_summary.currency_count = 1 then order_summary.currency_code end as currency_code,
        case when order_summary.currency_count = 1 then order_summary.order_revenue end as order_revenue,
        case
            when order_summary.currency_count = 1 then coalesce(refund_summary.refund_amount, 0)
        end as refund_amount,
        case
            when order_summary.currency_count = 1
                then order_summary.order_revenue - coalesce(refund_summary.refund_amount, 0)
        end as net_revenue,
        {{ reporting_currency() }} as reporting_currency,
        coalesce(order_summary.order_revenue_reporting, 0) as order_revenue_reporting,
        coalesce(refund_summary.refund_amount_reporting, 0) as refund_amount_reporting,
        coalesce(order_summary.order_revenue_reporting, 0)
            - coalesce(refund_summary.refund_amount_reporting, 0) as net_revenue_reporting,
        coalesce(order_summary.cost_of_goods_reporting, 0) as cost_of_goods_reporting,
        customers.is_deleted,
        -- tiers and deciles rank customers not deleted on the as-of date with at least one revenue order
        not customers.is_deleted and order_summary.customer_id is not null as is_ranked
    from customers
    cross join as_of
    left join order_summary
        on order_summary.customer_id = customers.customer_id
    left join refund_summary
        on refund_summary.customer_id = customers.customer_id

),

ranked as (

    select
        *,
        net_revenue_reporting - cost_of_goods_reporting as gross_margin_reporting,
        case
            when is_ranked then
                percent_rank() over (partition by is_ranked order by net_revenue_reporting desc)
        end as revenue_percent_rank
    from customer_values

),

deciled as (

    select
        *,
        -- decile 1 = the top 10% by net revenue; ties share a decile
        case
            when is_ranked then least(cast(floor(revenue_percent_rank * 10) as integer) + 1, 10)
        end as revenue_decile
    from ranked

),

final as (

    select
        deciled.as_of_date,
        deciled.customer_id,
        deciled.segment,
        deciled.country_code,
        deciled.acquisition_channel,
        deciled.signed_up_date,
        deciled.first_order_date,
        deciled.last_order_date,
        deciled.tenure_days,
        deciled.customer_age_days,
        deciled.order_count,
        deciled.refund_count,
        deciled.currency_code,
        deciled.order_revenue,
        deciled.refund_amount,
        deciled.net_revenue,
        deciled.reporting_currency,
        deciled.order_revenue_reporting,
        deciled.refund_amount_reporting,
        deciled.net_revenue_reporting,
        deciled.cost_of_goods_reporting,
        deciled.gross_margin_reporting,
        round({{ safe_divide('deciled.gross_margin_reporting', 'deciled.net_revenue_reporting') }}, 4) as gross_margin_rate,
        round({{ safe_divide('deciled.order_revenue_reporting', 'deciled.order_count') }}, 2) as average_order_value_reporting,
        round(cast(deciled.revenue_percent_rank as {{ dbt.type_numeric() }}), 4) as revenue_percent_rank,
        deciled.revenue_decile,
        case
            when not deciled.is_ranked then 'none'
            when deciled.revenue_decile = 1 then 'platinum'
            when deciled.revenue_decile <= 3 then 'gold'
            when deciled.revenue_decile <= 6 then 'silver'
            else 'bronze'
        end as value_tier,
        deciled.is_ranked,
        deciled.is_deleted,
        -- predictive (BG/NBD + gamma-gamma), from the python model's scores of this as-of date
        ltv_scores.p_alive,
        ltv_scores.expected_purchases_12m,
        ltv_scores.expected_order_value,
        ltv_scores.clv_12m
    from deciled
    left join ltv_scores
        on ltv_scores.customer_id = deciled.customer_id
        and ltv_scores.as_of_date = deciled.as_of_date

)

select * from final
