{{ config(indexes=[
    {'columns': ['touchpoint_group', 'touchpoint_value'], 'unique': true},
]) }}
-- win rate of demoed deals by follow-up after the demo, as of the as-of date (from mart_deal_touchpoints).
-- grain: one row per (touchpoint_group, touchpoint_value):
--   min_followup_calls   'yes' / 'no': at least var sales_followup_min_calls calls in the window
--   calls_after_demo     '0', '1', '2', '3', '4+'
--   meetings_after_demo  '0', '1', '2+'
-- win_rate = won / closed; win_rate_lift = win_rate / win rate of the other closed deals of the group.
with

touchpoints as (

    select * from {{ ref('mart_deal_touchpoints') }}

),

grouped as (

    select
        'min_followup_calls' as touchpoint_group,
        case when has_min_followup_calls then 'yes' else 'no' end as touchpoint_value,
        touchpoints.*
    from touchpoints

    union all

    select
        'calls_after_demo' as touchpoint_group,
        case when calls_after_demo >= 4 then '4+' else cast(calls_after_demo as {{ dbt.type_string() }}) end as touchpoint_value,
        touchpoints.*
    from touchpoints

    union all

    select
        'meetings_after_demo' as touchpoint_group,
        case when meetings_after_demo >= 2 then '2+' else cast(meetings_after_demo as {{ dbt.type_string() }}) end as touchpoint_value,
        touchpoints.*
    from touchpoints

),

counted as (

    select
        touchpoint_group,
        touchpoint_value,
        max(as_of_date) as as_of_date,
        max(window_days) as window_days,
        count(*) as deals_with_demo,
        sum(case when is_closed then 1 else 0 end) as deals_closed,
        sum(case when is_won then 1 else 0 end) as deals_won,
        sum(case when is_lost then 1 else 0 end) as deals_lost,
        sum(case when is_open then 1 else 0 end) as deals_open
    from grouped
    group by touchpoint_group, touchpoint_value

),

with_rest as (

    select
        counted.*,
        sum(deals_closed) over (partition by touchpoint_group) - deals_closed as rest_deals_closed,
        sum(deals_won) over (partition by touchpoint_group) - deals_won as rest_deals_won
    from counted

),

final as (

    select
        as_of_date,
        touchpoint_group,
        touchpoint_value,
        window_days,
        deals_with_demo,
        deals_closed,
        deals_won,
        deals_lost,
        deals_open,
        round({{ safe_divide('deals_won', 'deals_closed') }}, 4) as win_rate,
        round({{ safe_divide('rest_deals_won', 'rest_deals_closed') }}, 4) as rest_win_rate,
        round(
            {{ safe_divide('deals_won', 'deals_closed') }}
            / nullif({{ safe_divide('rest_deals_won', 'rest_deals_closed') }}, 0),
            4
        ) as win_rate_lift
    from with_rest

)

select * from final
