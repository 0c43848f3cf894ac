-- reconciliation: for every complete month (its last day on or before the as-of date), the MRR of
-- mart_mrr_movements equals the month-end MRR snapshot of fct_subscription_mrr_monthly (rows
-- active at month end, reporting currency). The fact rounds each term to cents, the mart each
-- account's total, so they may differ by up to half a cent per term. Returns the months that differ more.
with

movements as (

    select * from {{ ref('mart_mrr_movements') }}

),

facts as (

    select * from {{ ref('fct_subscription_mrr_monthly') }}

),

mart_months as (

    select
        month_start_date,
        sum(mrr_reporting) as mrr_reporting
    from movements
    where snapshot_date = month_end_date
    group by month_start_date

),

fact_months as (

    select
        facts.month_start_date,
        sum(facts.mrr_amount_reporting) as mrr_reporting,
        count(*) as term_count
    from facts
    where facts.is_active_at_month_end
      and not facts.is_deleted
      and facts.month_end_date <= (select max(as_of_date) from movements)
    group by facts.month_start_date

),

final as (

    select
        coalesce(mart_months.month_start_date, fact_months.month_start_date) as month_start_date,
        mart_months.mrr_reporting as mart_mrr_reporting,
        fact_months.mrr_reporting as fact_mrr_reporting,
        fact_months.term_count
    from mart_months
    full outer join fact_months
        on fact_months.month_start_date = mart_months.month_start_date
    where abs(coalesce(mart_months.mrr_reporting, 0) - coalesce(fact_months.mrr_reporting, 0))
        > 0.005 * coalesce(fact_months.term_count, 0)

)

select * from final
