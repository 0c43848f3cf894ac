{{ config(indexes=[
    {'columns': ['dimension', 'dimension_value']},
    {'columns': ['stage_id']},
]) }}
-- the sales funnel as of the as-of date, for every slice of the deals.
-- grain: one row per (dimension, dimension_value, funnel stage); see macro sales_slice_columns.
-- A deal reached a stage when it entered that stage or any later funnel stage (so a skipped
-- stage counts as reached, not entered); it moved on when it reached a later one; won / lost /
-- open is the kind of the stage it was in at the end of the as-of date.
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

funnel_stages as (

    select
        stage_id,
        stage_name,
        stage_order,
        funnel_step,
        win_probability,
        is_won,
        -- the stage's bit in int_deals__state_as_of.entered_funnel_steps_mask
        cast(1 as {{ dbt.type_bigint() }}) << cast(funnel_step - 1 as integer) as stage_bit
    from {{ ref('dim_deal_stage') }}
    where is_funnel_stage

),

deal_slices as (

    select
        deal_id,
        furthest_funnel_step,
        entered_funnel_steps_mask as entered_stage_bits,
        is_won,
        is_lost,
        is_open{{ sales_slice_columns() }}
    from {{ ref('int_deals__state_as_of') }}

),

deal_counts as (

    -- the deals of every slice counted once per furthest funnel step and set of entered stages:
    -- the per-stage counts below add these few rows up instead of aggregating one row per deal
    -- and reached stage
    select
        {{ sales_slice_dimension() }} as dimension,
        {{ sales_slice_value() }} as dimension_value,
        furthest_funnel_step,
        entered_stage_bits,
        count(*) as deals,
        sum(case when is_won then 1 else 0 end) as deals_won,
        sum(case when is_lost then 1 else 0 end) as deals_lost,
        sum(case when is_open then 1 else 0 end) as deals_open
    from deal_slices
    group by {{ sales_grouping_sets(['furthest_funnel_step', 'entered_stage_bits']) }}

),

dimension_values as (

    select distinct
        dimension,
        dimension_value
    from deal_counts

),

grid as (

    -- every slice gets every stage, so counts of 0 are rows, not gaps
    select
        dimension_values.dimension,
        dimension_values.dimension_value,
        funnel_stages.*
    from dimension_values
    cross join funnel_stages

),

reached as (

    -- a deal reached a stage when its furthest step is that stage's step or a later one, and
    -- entered it when the stage's bit is set
    select
        deal_counts.*,
        funnel_stages.stage_id,
        deal_counts.furthest_funnel_step > funnel_stages.funnel_step as is_moved_on,
        deal_counts.furthest_funnel_step = funnel_stages.funnel_step as is_furthest_stage,
        mod(deal_counts.entered_stage_bits, 2 * funnel_stages.stage_bit) >= funnel_stages.stage_bit as is_entered
    from deal_counts
    inner join funnel_stages
        on deal_counts.furthest_funnel_step >= funnel_stages.funnel_step

),

stage_counts as (

    select
        dimension,
        dimension_value,
        stage_id,
        cast(sum(deals) as {{ dbt.type_bigint() }}) as deals_reached,
        cast(sum(case when is_entered then deals else 0 end) as {{ dbt.type_bigint() }}) as deals_entered,
        cast(sum(case when is_moved_on then deals else 0 end) as {{ dbt.type_bigint() }}) as deals_moved_on,
        cast(sum(deals_won) as {{ dbt.type_bigint() }}) as deals_won,
        cast(sum(deals_lost) as {{ dbt.type_bigint() }}) as deals_lost,
        cast(sum(case when is_furthest_stage then deals_lost else 0 end) as {{ dbt.type_bigint() }}) as deals_lost_at_stage,
        cast(sum(deals_open) as {{ dbt.type_bigint() }}) as deals_open
    from reached
    group by
        dimension,
        dimension_value,
        stage_id

),

completed_visits as (

    -- time in stage: every visit of a live deal that ended on or before the as-of date (a
    -- reopened stage has one duration per visit)
    select
        deal_slices.*,
        visits.stage_id,
        {{ sales_percentile_input('visits.duration_days') }} as duration_days
    from {{ ref('fct_deal_stage_history') }} as visits
    cross join as_of
    inner join deal_slices
        on deal_slices.deal_id = visits.deal_id
    where not visits.is_deleted
      and visits.entered_date <= as_of.as_of_date
      and visits.exited_date <= as_of.as_of_date
      and visits.exited_at is not null

),

stage_durations as (

    select
        {{ sales_slice_dimension() }} as dimension,
        {{ sales_slice_value() }} as dimension_value,
        stage_id,
        count(*) as completed_visits,
        round(cast({{ sales_percentile('duration_days', 0.5) }} as {{ dbt.type_numeric() }}), 2) as median_days_in_stage,
        round(cast({{ sales_percentile('duration_days', 0.9) }} as {{ dbt.type_numeric() }}), 2) as p90_days_in_stage
    from completed_visits
    group by {{ sales_grouping_sets(['stage_id']) }}

),

final as (

    select
        as_of.as_of_date,
        grid.dimension,
        grid.dimension_value,
        grid.stage_id,
        grid.stage_name,
        grid.stage_order,
        grid.funnel_step,
        grid.is_won as is_won_stage,
        grid.win_probability as stage_win_probability,
        coalesce(stage_counts.deals_reached, 0) as deals_reached,
        coalesce(stage_counts.deals_entered, 0) as deals_entered,
        coalesce(stage_counts.deals_reached, 0) - coalesce(stage_counts.deals_entered, 0) as deals_skipped,
        coalesce(stage_counts.deals_moved_on, 0) as deals_moved_on,
        coalesce(stage_counts.deals_won, 0) as deals_won,
        coalesce(stage_counts.deals_lost, 0) as deals_lost,
        coalesce(stage_counts.deals_lost_at_stage, 0) as deals_lost_at_stage,
        coalesce(stage_counts.deals_open, 0) as deals_open,
        -- the won stage is the end of the funnel: it has no next stage
        case
            when not grid.is_won then
                round({{ safe_divide('stage_counts.deals_moved_on', 'stage_counts.deals_reached') }}, 4)
        end as stage_to_next_rate,
        round({{ safe_divide('stage_counts.deals_won', 'stage_counts.deals_reached') }}, 4) as stage_to_won_rate,
        coalesce(stage_durations.completed_visits, 0) as completed_visits,
        stage_durations.median_days_in_stage,
        stage_durations.p90_days_in_stage
    from grid
    cross join as_of
    left join stage_counts
        on stage_counts.dimension = grid.dimension
        and stage_counts.dimension_value = grid.dimension_value
        and stage_counts.stage_id = grid.stage_id
    left join stage_durations
        on stage_durations.dimension = grid.dimension
        and stage_durations.dimension_value = grid.dimension_value
        and stage_durations.stage_id = grid.stage_id

)

select * from final
