-- the state of every live deal at the end of the as-of day (macro as_of_date): the stage it was in,
-- furthest funnel step, funnel steps entered, won / lost / open, close date, sales cycle and the
-- amount in the reporting currency. Built once per run for the three sales marts that each computed
-- it from the stage history themselves (~0.3-0.5 s a mart at scale 10). Part of the marts build
-- (tag as_of, transform.MARTS), not of the core build, so it is always built with the marts' vars: an
-- as-of rebuild of the marts rebuilds it for that date first. Incremental across as-of days
-- (macros/as_of_incremental.sql): a run rewrites the deals that changed upstream, or whose creation,
-- deletion or stage change falls between the last build's day and this one.
{{ as_of_incremental('deal_id', 'deals_changed') }}
{%- set window = as_of_window() %}
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),
{%- if window is not none %}

changed_deals as (

    {{ deals_changed(window) }}

),
{%- endif %}

live_deals as (

    -- created on or before the as-of date and not deleted by then (deleted_date after the as-of
    -- date still counts: a run made on that date saw it)
    select
        deals.deal_id,
        deals.owner_user_id,
        deals.source_channel,
        deals.segment,
        deals.created_at,
        deals.created_date,
        deals.created_month,
        deals.deal_amount,
        deals.currency_code
    from {{ ref('fct_deals') }} as deals
    cross join as_of
    where deals.created_date <= as_of.as_of_date
      and (deals.deleted_date is null or deals.deleted_date > as_of.as_of_date)
      -- a deleted deal without a deletion date (should not happen) is never counted
      and not (deals.is_deleted and deals.deleted_date is null)
      {%- if window is not none %}
      and deals.deal_id = any(array(select deal_id from changed_deals))
      {%- endif %}

),

deal_progress as (

    -- the stage visits entered on or before the as-of date, of every deal (the live deals are
    -- kept by the join below: filtering them here cost a join of every visit); a visit that ended
    -- after the as-of date is still open. The deal's stage at the end of the as-of date is its
    -- last visit entered by then, which is the one visit still open then: in fct_deal_stage_history
    -- each visit of a deal ends when the next one is entered. Picking it in the same hash aggregate
    -- saves sorting every visit for a row_number window; its kind (won, lost) comes from
    -- dim_deal_stage below, as fct_deal_stage_history's is_*_stage flags do.
    select
        visits.deal_id,
        max(visits.funnel_step) as furthest_funnel_step,
        -- bit funnel_step - 1 set for every funnel step entered (lost stages have no funnel_step)
        bit_or(cast(1 as {{ dbt.type_bigint() }}) << cast(visits.funnel_step - 1 as integer)) as entered_funnel_steps_mask,
        max(case when visits.is_open_as_of then visits.stage_id end) as stage_id,
        max(case when visits.is_open_as_of then visits.entered_at end) as stage_entered_at
    from (
        select
            visits.*,
            not coalesce(visits.exited_at is not null and visits.exited_date <= as_of.as_of_date, false) as is_open_as_of
        from {{ ref('fct_deal_stage_history') }} as visits
        cross join as_of
        where not visits.is_deleted
          and visits.entered_date <= as_of.as_of_date
          {%- if window is not none %}
          and visits.deal_id = any(array(select deal_id from changed_deals))
          {%- endif %}
    ) as visits
    group by visits.deal_id

),

deals_dated as (

    select
        live_deals.*,
        deal_progress.stage_id,
        deal_progress.stage_entered_at,
        deal_progress.furthest_funnel_step,
        coalesce(deal_progress.entered_funnel_steps_mask, 0) as entered_funnel_steps_mask,
        coalesce(stages.is_closed, false) as is_closed,
        coalesce(stages.is_won, false) as is_won,
        coalesce(stages.is_lost, false) as is_lost,
        case when stages.is_closed then {{ utc_date('deal_progress.stage_entered_at') }} end as closed_date,
        stages.win_probability as stage_win_probability
    from live_deals
    left join deal_progress
        on deal_progress.deal_id = live_deals.deal_id
    left join {{ ref('dim_deal_stage') }} as stages
        on stages.stage_id = deal_progress.stage_id

),

final as (

    select
        deals_dated.*,
        not deals_dated.is_closed as is_open,
        {{ dbt.datediff('deals_dated.created_date', 'deals_dated.closed_date', 'day') }} as sales_cycle_days,
        {{ to_reporting('deals_dated.deal_amount', 'fx_rates.fx_rate_to_reporting') }} as deal_amount_reporting,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from deals_dated
    left join {{ ref('int_fx_rates__filled_daily') }} as fx_rates
        on fx_rates.currency_code = deals_dated.currency_code
        and fx_rates.rate_date = coalesce(deals_dated.closed_date, deals_dated.created_date)

)

select * from final
