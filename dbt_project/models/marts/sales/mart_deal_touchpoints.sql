{{ config(indexes=[
    {'columns': ['deal_id'], 'unique': true},
    {'columns': ['has_min_followup_calls']},
]) }}
-- follow-up after a demo versus conversion, as of the as-of date.
-- grain: one row per live deal with a demo on or before the as-of date. Counts the calls and
-- meetings in the window (demo_at, demo_at + N days], N = var sales_touchpoint_window_days, that
-- happened on or before the as-of date; the outcome is the deal's state at the end of that date.
{%- set window_days = var('sales_touchpoint_window_days', 24) | int %}
{%- set min_calls = var('sales_followup_min_calls', 2) | int %}
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

deals_as_of as (

    select * from {{ ref('int_deals__state_as_of') }}

),

activities_as_of as (

    -- only the columns and kinds of activity used below: the CTE is read twice, so postgres
    -- materializes it, and whole activity rows spilled it to disk
    select
        activities.deal_id,
        activities.occurred_at,
        activities.is_demo,
        activities.is_call,
        activities.is_meeting
    from {{ ref('fct_activities') }} as activities
    cross join as_of
    where activities.deal_id is not null
      and activities.occurred_date <= as_of.as_of_date
      and (activities.deleted_date is null or activities.deleted_date > as_of.as_of_date)
      and not (activities.is_deleted and activities.deleted_date is null)
      and (activities.is_demo or activities.is_call or activities.is_meeting)

),

demos as (

    -- the deal's first demo, and the end of its window (computed once per demo, not once per
    -- activity joined below)
    select
        deal_id,
        min(occurred_at) as demo_at,
        {{ dbt.dateadd('day', window_days, 'min(occurred_at)') }} as window_end_at
    from activities_as_of
    where is_demo
    group by deal_id

),

window_touches as (

    select
        demos.deal_id,
        sum(case when activities_as_of.is_call then 1 else 0 end) as calls_after_demo,
        sum(case when activities_as_of.is_meeting then 1 else 0 end) as meetings_after_demo
    from demos
    inner join activities_as_of
        on activities_as_of.deal_id = demos.deal_id
        and activities_as_of.occurred_at > demos.demo_at
        and activities_as_of.occurred_at <= demos.window_end_at
    -- a demo that is neither a call nor a meeting adds nothing to the counts
    where activities_as_of.is_call or activities_as_of.is_meeting
    group by demos.deal_id

),

final as (

    select
        as_of.as_of_date,
        deals_as_of.deal_id,
        deals_as_of.owner_user_id,
        deals_as_of.source_channel,
        deals_as_of.segment,
        deals_as_of.created_date,
        demos.demo_at,
        {{ utc_date('demos.demo_at') }} as demo_date,
        {{ window_days }} as window_days,
        {{ min_calls }} as min_followup_calls,
        -- the window lies wholly on or before the as-of date (counts can no longer grow)
        {{ dbt.dateadd('day', window_days, utc_date('demos.demo_at')) }} <= as_of.as_of_date as is_window_complete,
        coalesce(window_touches.calls_after_demo, 0) as calls_after_demo,
        coalesce(window_touches.meetings_after_demo, 0) as meetings_after_demo,
        coalesce(window_touches.calls_after_demo, 0) >= {{ min_calls }} as has_min_followup_calls,
        deals_as_of.stage_id,
        deals_as_of.is_open,
        deals_as_of.is_closed,
        deals_as_of.is_won,
        deals_as_of.is_lost,
        deals_as_of.closed_date,
        {{ dbt.datediff(utc_date('demos.demo_at'), 'deals_as_of.closed_date', 'day') }} as days_demo_to_close,
        {{ reporting_currency() }} as reporting_currency,
        deals_as_of.deal_amount_reporting
    from deals_as_of
    inner join demos
        on demos.deal_id = deals_as_of.deal_id
    left join window_touches
        on window_touches.deal_id = deals_as_of.deal_id
    cross join as_of

)

select * from final
