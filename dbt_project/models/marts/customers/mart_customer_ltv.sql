-- lifetime value per customer as of the as-of date, in the reporting currency
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

refunds as (

    select * from {{ ref('fct_refunds') }}

),

order_summary as (

    select
        orders.customer_id,
        count(*) as order_count,
        sum(orders.net_amount_reporting) as order_revenue_reporting,
        min(orders.ordered_date) as first_order_date,
        max(orders.ordered_date) as last_order_date
    from orders
    cross join as_of
    where orders.is_revenue_order
      and orders.ordered_date <= as_of.as_of_date
    group by orders.customer_id

),

reporting as (

    -- the currency the facts were converted to (not the var: the facts may predate a change of it)
    select max(reporting_currency) as reporting_currency
    from orders

),

refund_summary as (

    select
        refunds.customer_id,
        count(*) as refund_count,
        sum(refunds.refund_amount_reporting) as refund_amount_reporting
    from refunds
    cross join as_of
    where refunds.is_revenue_refund
      and refunds.refunded_date <= as_of.as_of_date
    group by refunds.customer_id

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
        coalesce(order_summary.order_count, 0) as order_count,
        coalesce(refund_summary.refund_count, 0) as refund_count,
        reporting.reporting_currency,
        coalesce(order_summary.order_revenue_reporting, 0) as order_revenue_reporting,
        coalesce(refund_summary.refund_amount_reporting, 0) as refund_amount_reporting,
        coalesce(order_summary.order_revenue_reporting, 0)
            - coalesce(refund_summary.refund_amount_reporting, 0) as net_revenue_reporting,
        round({{ safe_divide('order_summary.order_revenue_reporting', 'order_summary.order_count') }}, 2)
            as average_order_value_reporting,
        customers.is_deleted,
        -- tiers and deciles rank live customers with at least one revenue order
        not customers.is_deleted and order_summary.customer_id is not null as is_ranked
    from customers
    cross join as_of
    cross join reporting
    left join order_summary
        on order_summary.customer_id = customers.customer_id
    left join refund_summary
        on refund_summary.customer_id = customers.customer_id
    where customers.signed_up_date <= as_of.as_of_date
       or order_summary.customer_id is not null

),

ranked as (

    select
        *,
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
        as_of_date,
        customer_id,
        segment,
        country_code,
        acquisition_channel,
        signed_up_date,
        first_order_date,
        last_order_date,
        tenure_days,
        order_count,
        refund_count,
        reporting_currency,
        order_revenue_reporting,
        refund_amount_reporting,
        net_revenue_reporting,
        average_order_value_reporting,
        round(cast(revenue_percent_rank as {{ dbt.type_numeric() }}), 4) as revenue_percent_rank,
        revenue_decile,
        case
            when not is_ranked then 'none'
            when revenue_decile = 1 then 'platinum'
            when revenue_decile <= 3 then 'gold'
            when revenue_decile <= 6 then 'silver'
            else 'bronze'
        end as value_tier,
        is_ranked,
        is_deleted
    from deciled

)

select * from final
