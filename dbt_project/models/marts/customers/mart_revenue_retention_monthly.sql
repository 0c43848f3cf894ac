-- recurring revenue per month up to the as-of date: MRR bridge (start + movements + FX = end)
-- and net / gross revenue retention from mart_mrr_movements
{{ config(
    indexes=[
        {'columns': ['month_start_date'], 'unique': true},
    ]
) }}

with

movements as (

    select * from {{ ref('mart_mrr_movements') }}

),

monthly as (

    select
        as_of_date,
        month_start_date,
        month_end_date,
        snapshot_date,
        reporting_currency,
        sum(previous_mrr_reporting) as starting_mrr_reporting,
        sum(fx_effect_reporting) as fx_effect_reporting,
        sum(previous_mrr_constant_fx_reporting) as starting_mrr_constant_fx_reporting,
        sum(new_mrr_reporting) as new_mrr_reporting,
        sum(expansion_mrr_reporting) as expansion_mrr_reporting,
        sum(contraction_mrr_reporting) as contraction_mrr_reporting,
        sum(churned_mrr_reporting) as churned_mrr_reporting,
        sum(reactivation_mrr_reporting) as reactivation_mrr_reporting,
        sum(mrr_reporting) as ending_mrr_reporting,
        count(case when previous_mrr_constant_fx_reporting > 0 then 1 end) as accounts_at_start,
        count(case when is_churn then 1 end) as churned_accounts,
        count(case when is_new then 1 end) as new_accounts,
        count(case when is_reactivation then 1 end) as reactivated_accounts,
        count(case when mrr_reporting > 0 then 1 end) as accounts_at_end
    from movements
    group by as_of_date, month_start_date, month_end_date, snapshot_date, reporting_currency

),

final as (

    select
        *,
        -- retention of the revenue of the accounts paying at the start of the month (constant currency)
        round({{ safe_divide('starting_mrr_constant_fx_reporting + expansion_mrr_reporting + contraction_mrr_reporting + churned_mrr_reporting', 'starting_mrr_constant_fx_reporting') }}, 4) as net_revenue_retention,
        round({{ safe_divide('starting_mrr_constant_fx_reporting + contraction_mrr_reporting + churned_mrr_reporting', 'starting_mrr_constant_fx_reporting') }}, 4) as gross_revenue_retention,
        round({{ safe_divide('churned_accounts', 'accounts_at_start') }}, 4) as account_churn_rate
    from monthly

)

select * from final
