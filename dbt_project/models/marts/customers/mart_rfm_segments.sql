-- one row per RFM segment as of the as-of date: the segment dashboard's counts and averages
-- without scanning every customer on each view
{{ config(
    indexes=[
        {'columns': ['rfm_segment'], 'unique': true},
    ]
) }}

with

customer_rfm as (

    select * from {{ ref('mart_customer_rfm') }}

),

totals as (

    select count(*) as customers from customer_rfm

),

segments as (

    select
        as_of_date,
        rfm_segment,
        count(*) as customers,
        avg(recency_days) as average_recency_days,
        avg(frequency_orders) as average_frequency_orders,
        sum(monetary_net_revenue_reporting) as monetary_net_revenue_reporting,
        avg(monetary_net_revenue_reporting) as average_monetary_net_revenue_reporting
    from customer_rfm
    group by as_of_date, rfm_segment

),

final as (

    select
        segments.as_of_date,
        segments.rfm_segment,
        segments.customers,
        round({{ safe_divide('segments.customers', 'totals.customers') }}, 4) as customer_share,
        round(cast(segments.average_recency_days as {{ dbt.type_numeric() }}), 1) as average_recency_days,
        round(cast(segments.average_frequency_orders as {{ dbt.type_numeric() }}), 2) as average_frequency_orders,
        {{ reporting_currency() }} as reporting_currency,
        segments.monetary_net_revenue_reporting,
        round(cast(segments.average_monetary_net_revenue_reporting as {{ dbt.type_numeric() }}), 2)
            as average_monetary_net_revenue_reporting
    from segments
    cross join totals

)

select * from final
