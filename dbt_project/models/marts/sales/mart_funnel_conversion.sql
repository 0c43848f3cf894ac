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

{{ sales_deal_state_as_of() }},

funnel_stages as (

    select
        stage_id,
        stage_name,
        stage_order,
        funnel_step,
        win_probability,
        is_won
    from {{ ref('dim_deal_stage') }}
    where is_funnel_stage

),

deal_slices as (

    select
        deal_id,
        furthest_funnel_step,
        is_won,
        is_lost,
        is_open{{ sales_slice_columns() }}
    from deals_as_of

),

dimension_values as (

    select
        {{ sales_slice_dimension() }} as dimension,
        {{ sales_slice_value() }} as dimension_value
    from deal_slices
    group by {{ sales_grouping_sets([]) }}
    -- the empty grouping set yields a row even without deals
    having count(*) > 0

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

stage_entries as (

    select distinct deal_id, stage_id
    from visits_as_of

),

reached as (

    -- one row per deal and funnel stage it reached; the grouping sets below count it in every slice
    select
        deal_slices.*,
        funnel_stages.stage_id,
        deal_slices.furthest_funnel_step > funnel_stages.funnel_step as is_moved_on,
        deal_slices.furthest_funnel_step = funnel_stages.funnel_step as is_furthest_stage,
        stage_entries.deal_id is not null as is_entered
    from deal_slices
    inner join funnel_stages
        on deal_slices.furthest_funnel_step >= funnel_stages.funnel_step
    left join stage_entries
        on stage_entries.deal_id = deal_slices.deal_id
        and stage_entries.stage_id = funnel_stages.stage_id

),

stage_counts as (

    select
        {{ sales_slice_dimension() }} as dimension,
        {{ sales_slice_value() }} as dimension_value,
        stage_id,
        count(*) as deals_reached,
        sum(case when is_entered then 1 else 0 end) as deals_entered,
        sum(case when is_moved_on then 1 else 0 end) as deals_moved_on,
        sum(case when is_won then 1 else 0 end) as deals_won,
        sum(case when is_lost then 1 else 0 end) as deals_lost,
        sum(case when is_lost and is_furthest_stage then 1 else 0 end) as deals_lost_at_stage,
        sum(case when is_open then 1 else 0 end) as deals_open
    from reached
    group by {{ sales_grouping_sets(['stage_id']) }}

),

completed_visits as (

    -- time in stage: every visit that ended on or before the as-of date (a reopened stage has
    -- one duration per visit)
    select
        deal_slices.*,
        visits_as_of.stage_id,
        visits_as_of.duration_days
    from visits_as_of
    inner join deal_slices
        on deal_slices.deal_id = visits_as_of.deal_id
    where visits_as_of.exited_at is not null

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
