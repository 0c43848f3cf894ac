-- sales funnel as of the as-of date: one row per funnel stage (open stages by stage_order, then
-- won). A deal reached a stage when, on or before the as-of date, it visited that stage or any
-- later one; its outcome is the kind of the last stage it entered on or before that date.
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

stages as (

    select * from {{ ref('dim_deal_stage') }}

),

deals as (

    select * from {{ ref('fct_deals') }}

),

history as (

    select * from {{ ref('fct_deal_stage_history') }}

),

funnel_stages as (

    select
        stage_id,
        stage_name,
        stage_order,
        funnel_step,
        is_won
    from stages
    where is_funnel_stage

),

funnel_deals as (

    select
        deals.deal_id,
        deals.stage_id,
        deals.created_at
    from deals
    cross join as_of
    where not deals.is_deleted
      and deals.created_date <= as_of.as_of_date

),

recorded_visits as (

    select
        history.deal_id,
        history.to_stage_id as stage_id,
        history.changed_at as entered_at
    from history
    cross join as_of
    where not history.is_deleted
      and history.changed_date <= as_of.as_of_date

),

visits as (

    select recorded_visits.*
    from recorded_visits
    inner join funnel_deals
        on funnel_deals.deal_id = recorded_visits.deal_id

    union all

    -- a deal without any recorded stage change counts as having entered its current stage
    select
        funnel_deals.deal_id,
        funnel_deals.stage_id,
        funnel_deals.created_at as entered_at
    from funnel_deals
    where not exists (
        select 1 from recorded_visits
        where recorded_visits.deal_id = funnel_deals.deal_id
    )

),

ranked_visits as (

    select
        visits.deal_id,
        stages.funnel_step,
        stages.is_won,
        stages.is_lost,
        row_number() over (
            partition by visits.deal_id
            order by visits.entered_at desc
        ) as recency_rank
    from visits
    inner join stages
        on stages.stage_id = visits.stage_id

),

deal_progress as (

    select
        deal_id,
        max(funnel_step) as furthest_funnel_step,
        max(case when recency_rank = 1 and is_won then 1 else 0 end) = 1 as is_won,
        max(case when recency_rank = 1 and is_lost then 1 else 0 end) = 1 as is_lost
    from ranked_visits
    group by deal_id

),

stage_counts as (

    select
        funnel_stages.stage_id,
        funnel_stages.stage_name,
        funnel_stages.stage_order,
        funnel_stages.funnel_step,
        funnel_stages.is_won as is_won_stage,
        count(deal_progress.deal_id) as deals_reached,
        count(case when deal_progress.furthest_funnel_step > funnel_stages.funnel_step then 1 end) as deals_moved_on,
        count(case when deal_progress.is_won then 1 end) as deals_won,
        count(case when deal_progress.is_lost then 1 end) as deals_lost,
        count(case when not deal_progress.is_won and not deal_progress.is_lost then 1 end) as deals_open
    from funnel_stages
    left join deal_progress
        on deal_progress.furthest_funnel_step >= funnel_stages.funnel_step
    group by
        funnel_stages.stage_id,
        funnel_stages.stage_name,
        funnel_stages.stage_order,
        funnel_stages.funnel_step,
        funnel_stages.is_won

),

final as (

    select
        as_of.as_of_date,
        stage_counts.stage_id,
        stage_counts.stage_name,
        stage_counts.stage_order,
        stage_counts.funnel_step,
        stage_counts.is_won_stage,
        stage_counts.deals_reached,
        stage_counts.deals_moved_on,
        stage_counts.deals_won,
        stage_counts.deals_lost,
        stage_counts.deals_open,
        -- the won stage is the end of the funnel: it has no next stage
        case
            when not stage_counts.is_won_stage then
                round({{ safe_divide('stage_counts.deals_moved_on', 'stage_counts.deals_reached') }}, 4)
        end as stage_to_next_rate,
        round({{ safe_divide('stage_counts.deals_won', 'stage_counts.deals_reached') }}, 4) as stage_to_won_rate
    from stage_counts
    cross join as_of

)

select * from final
