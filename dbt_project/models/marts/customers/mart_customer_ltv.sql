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

-- per-customer revenue and refunds, summed once per run for several marts
customer_revenue as (

    select * from {{ ref('int_customers__revenue_as_of') }}

),

ltv_scores as (

    select * from {{ source('ml', 'customer_ltv_scores') }}

),

customer_values as (

    select
        as_of.as_of_date,
        customers.customer_id,
        customers.segment,
        customers.country_code,
        customers.acquisition_channel,
        customers.signed_up_date,
        customer_revenue.first_order_date,
        customer_revenue.last_order_date,
        {{ dbt.datediff('customer_revenue.first_order_date', 'as_of.as_of_date', 'day') }} as tenure_days,
        {{ dbt.datediff('customers.signed_up_date', 'as_of.as_of_date', 'day') }} as customer_age_days,
        coalesce(customer_revenue.order_count, 0) as order_count,
        coalesce(customer_revenue.refund_count, 0) as refund_count,
        -- amounts in the order currency exist only when all the customer's orders share one currency
        customer_revenue.currency_code,
        customer_revenue.order_revenue,
        customer_revenue.refund_amount,
        customer_revenue.order_revenue - customer_revenue.refund_amount as net_revenue,
        {{ reporting_currency() }} as reporting_currency,
        coalesce(customer_revenue.order_revenue_reporting, 0) as order_revenue_reporting,
        coalesce(customer_revenue.refund_amount_reporting, 0) as refund_amount_reporting,
        coalesce(customer_revenue.order_revenue_reporting, 0)
            - coalesce(customer_revenue.refund_amount_reporting, 0) as net_revenue_reporting,
        coalesce(customer_revenue.cost_of_goods_reporting, 0) as cost_of_goods_reporting,
        customers.is_deleted,
        -- tiers and deciles rank customers not deleted on the as-of date with at least one revenue order
        not customers.is_deleted and coalesce(customer_revenue.order_count, 0) > 0 as is_ranked
    from customers
    cross join as_of
    left join customer_revenue
        on customer_revenue.customer_id = customers.customer_id

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
