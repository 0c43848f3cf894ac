-- the dashboard summaries agree with the per-customer marts they summarise: per value tier and per
-- RFM segment the same customers and the same net revenue. Returns the tiers and segments that differ.
with

tiers_from_customers as (

    select
        value_tier as summary_key,
        count(*) as customers,
        sum(net_revenue_reporting) as net_revenue_reporting
    from {{ ref('mart_customer_ltv') }}
    group by value_tier

),

tiers as (

    select
        value_tier as summary_key,
        customers,
        net_revenue_reporting
    from {{ ref('mart_customer_value_tiers') }}

),

segments_from_customers as (

    select
        rfm_segment as summary_key,
        count(*) as customers,
        sum(monetary_net_revenue_reporting) as net_revenue_reporting
    from {{ ref('mart_customer_rfm') }}
    group by rfm_segment

),

segments as (

    select
        rfm_segment as summary_key,
        customers,
        monetary_net_revenue_reporting as net_revenue_reporting
    from {{ ref('mart_rfm_segments') }}

),

compared as (

    select
        'value_tier' as summary,
        coalesce(tiers.summary_key, tiers_from_customers.summary_key) as summary_key,
        tiers.customers,
        tiers_from_customers.customers as expected_customers,
        tiers.net_revenue_reporting,
        tiers_from_customers.net_revenue_reporting as expected_net_revenue_reporting
    from tiers
    full outer join tiers_from_customers
        on tiers_from_customers.summary_key = tiers.summary_key

    union all

    select
        'rfm_segment' as summary,
        coalesce(segments.summary_key, segments_from_customers.summary_key) as summary_key,
        segments.customers,
        segments_from_customers.customers as expected_customers,
        segments.net_revenue_reporting,
        segments_from_customers.net_revenue_reporting as expected_net_revenue_reporting
    from segments
    full outer join segments_from_customers
        on segments_from_customers.summary_key = segments.summary_key

)

select * from compared
where customers is distinct from expected_customers
   or net_revenue_reporting is distinct from expected_net_revenue_reporting
