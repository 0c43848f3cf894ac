-- MRR movements per account and month up to the as-of date. An account's MRR in a month is the
-- sum of the terms running at the end of the month's last day (for the running month: at the end
-- of the as-of date). Movements compare it with the previous month's MRR re-converted at this
-- month's FX rates (constant currency), so exchange rates never show up as expansion or
-- contraction; the FX difference is its own column. Churn (MRR falls to 0) takes precedence over
-- contraction; MRR returning after a month at 0 is reactivation, the first MRR ever is new.
-- Computed by int_accounts__mrr_movements_as_of, incremental across as-of days; this mart adds the
-- as-of date to its rows.
{{ config(
    indexes=[
        {'columns': ['account_id', 'month_start_date'], 'unique': true},
        {'columns': ['month_start_date']},
        {'columns': ['movement_type']},
    ]
) }}

with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

movements as (

    select * from {{ ref('int_accounts__mrr_movements_as_of') }}

),

final as (

    select
        as_of.as_of_date,
        movements.account_id,
        movements.month_start_date,
        movements.month_end_date,
        movements.snapshot_date,
        movements.reporting_currency,
        movements.previous_mrr_reporting,
        movements.previous_mrr_constant_fx_reporting,
        movements.fx_effect_reporting,
        movements.mrr_reporting,
        movements.mrr_change_reporting,
        movements.movement_type,
        movements.is_new,
        movements.is_expansion,
        movements.is_contraction,
        movements.is_churn,
        movements.is_reactivation,
        movements.new_mrr_reporting,
        movements.expansion_mrr_reporting,
        movements.contraction_mrr_reporting,
        movements.churned_mrr_reporting,
        movements.reactivation_mrr_reporting,
        movements.had_prior_mrr
    from movements
    cross join as_of

)

select * from final
