-- RFM scores and segments as of the as-of date for customers not deleted on that date with at
-- least one revenue order. Scores 1-5 by quintile of percent_rank (5 = best: most recent, most
-- orders, most net revenue); ties share a score. Segments: see the documented mapping in YAML
{{ config(
    indexes=[
        {'columns': ['customer_id'], 'unique': true},
        {'columns': ['rfm_segment']},
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

base as (

    select
        as_of.as_of_date,
        customers.customer_id,
        customers.segment,
        customers.acquisition_channel,
        customer_revenue.last_order_date,
        {{ dbt.datediff('customer_revenue.last_order_date', 'as_of.as_of_date', 'day') }} as recency_days,
        customer_revenue.order_count as frequency_orders,
        customer_revenue.order_revenue_reporting - customer_revenue.refund_amount_reporting as monetary_net_revenue_reporting
    from customers
    cross join as_of
    inner join customer_revenue
        on customer_revenue.customer_id = customers.customer_id
    where not customers.is_deleted
      and customer_revenue.order_count > 0

),

ranked as (

    select
        *,
        percent_rank() over (order by recency_days desc) as recency_percent_rank,
        percent_rank() over (order by frequency_orders) as frequency_percent_rank,
        percent_rank() over (order by monetary_net_revenue_reporting) as monetary_percent_rank
    from base

),

scored as (

    select
        *,
        least(cast(floor(recency_percent_rank * 5) as integer) + 1, 5) as recency_score,
        least(cast(floor(frequency_percent_rank * 5) as integer) + 1, 5) as frequency_score,
        least(cast(floor(monetary_percent_rank * 5) as integer) + 1, 5) as monetary_score
    from ranked

),

segmented as (

    select
        *,
        -- first matching rule wins (documented in the YAML and docs/metrics-customers.md)
        case
            when recency_score >= 4 and frequency_score >= 4 and monetary_score >= 4 then 'Champions'
            when recency_score >= 3 and frequency_score >= 3 then 'Loyal'
            when recency_score >= 4 and frequency_score = 1 then 'New'
            when recency_score >= 3 then 'Potential loyalist'
            when frequency_score >= 4 and monetary_score >= 4 then 'Can''t lose them'
            when frequency_score >= 3 then 'At risk'
            when recency_score = 2 then 'Hibernating'
            else 'Lost'
        end as rfm_segment
    from scored

),

final as (

    select
        as_of_date,
        customer_id,
        segment,
        acquisition_channel,
        last_order_date,
        recency_days,
        frequency_orders,
        {{ reporting_currency() }} as reporting_currency,
        monetary_net_revenue_reporting,
        recency_score,
        frequency_score,
        monetary_score,
        cast(recency_score as {{ dbt.type_string() }})
            || cast(frequency_score as {{ dbt.type_string() }})
            || cast(monetary_score as {{ dbt.type_string() }}) as rfm_cell,
        rfm_segment
    from segmented

)

select * from final
