-- reconciliation across the customer marts: the lifetime net revenue (reporting currency) of
-- mart_customer_ltv equals the total of the monthly net revenue of mart_cohort_retention and of
-- mart_ltv_cohorts, and the RFM monetary values plus the revenue of customers left out of RFM
-- (deleted on the as-of date). Returns a row when they differ.
with

ltv as (

    select
        sum(net_revenue_reporting) as net_revenue_reporting,
        sum(case when is_ranked then net_revenue_reporting else 0 end) as ranked_net_revenue_reporting
    from {{ ref('mart_customer_ltv') }}

),

cohort_retention as (

    select sum(net_revenue_reporting) as net_revenue_reporting
    from {{ ref('mart_cohort_retention') }}

),

ltv_cohorts as (

    select sum(net_revenue_reporting) as net_revenue_reporting
    from {{ ref('mart_ltv_cohorts') }}

),

rfm as (

    select sum(monetary_net_revenue_reporting) as net_revenue_reporting
    from {{ ref('mart_customer_rfm') }}

),

final as (

    select
        ltv.net_revenue_reporting as ltv_net_revenue_reporting,
        cohort_retention.net_revenue_reporting as cohort_retention_net_revenue_reporting,
        ltv_cohorts.net_revenue_reporting as ltv_cohorts_net_revenue_reporting,
        ltv.ranked_net_revenue_reporting,
        rfm.net_revenue_reporting as rfm_net_revenue_reporting
    from ltv
    cross join cohort_retention
    cross join ltv_cohorts
    cross join rfm
    where coalesce(ltv.net_revenue_reporting, 0) <> coalesce(cohort_retention.net_revenue_reporting, 0)
       or coalesce(ltv.net_revenue_reporting, 0) <> coalesce(ltv_cohorts.net_revenue_reporting, 0)
       or coalesce(ltv.ranked_net_revenue_reporting, 0) <> coalesce(rfm.net_revenue_reporting, 0)

)

select * from final
