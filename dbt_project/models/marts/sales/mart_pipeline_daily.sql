-- open pipeline by stage at the end of every day, from the first deal's creation to the as-of date,
-- as it stood that day: a deal counts with the amount, currency and soft delete of its type-2 period
-- valid at the end of the day (int_deals__historized). grain: one row per (date_day, open funnel stage).
-- A deal is in a stage at the end of a day when it entered the stage on or before that day and left
-- it after that day. Amounts are summed per currency and converted with each day's FX rate.
-- incremental: since a day's row depends only on what happened up to that day, a run writes only the
-- new days and the days a late change reached (macro sales_pipeline_daily_start); as_of_date is then
-- moved on every row by the post-hook
-- depends_on: {{ source('crm', 'deals') }}
-- depends_on: {{ source('crm', 'deal_stage_history') }}
-- depends_on: {{ source('crm', 'pipeline_stages') }}
-- depends_on: {{ source('crm', 'fx_rates') }}
{{
    config(
        materialized='incremental',
        unique_key='date_day',
        incremental_strategy='delete+insert',
        indexes=[
            {'columns': ['date_day']},
            {'columns': ['stage_id', 'date_day'], 'unique': true},
            {'columns': ['_batch_cutoff_xid']},
        ],
        post_hook=[
            "{% if is_incremental() %}update {{ this }} set as_of_date = (select max(as_of_date) from {{ this }}) where as_of_date < (select max(as_of_date) from {{ this }}){% endif %}",
        ],
    )
}}

{%- set start_day = sales_pipeline_daily_start() if is_incremental() else none %}

with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

open_stages as (

    select stage_id, stage_name, stage_order, funnel_step, win_probability
    from {{ ref('dim_deal_stage') }}
    where is_funnel_stage and not is_closed

),

visits as (

    select
        visits.deal_id,
        visits.stage_id,
        visits.entered_date,
        visits.exited_date
    from {{ ref('fct_deal_stage_history') }} as visits
    inner join open_stages
        on open_stages.stage_id = visits.stage_id
    where not visits.is_deleted
    {%- if start_day %}
      -- a visit that ended before the first day written adds nothing to it (see movements)
      and (visits.exited_date is null or visits.exited_date >= '{{ start_day }}')
    {%- endif %}

),

live_periods as (

    select
        deal_id,
        deal_amount,
        currency_code,
        valid_from_date,
        valid_to_date
    from {{ ref('int_deals__historized') }}
    where not is_deleted
    {%- if start_day %}
      and (valid_to_date is null or valid_to_date >= '{{ start_day }}')
    {%- endif %}

),

segments as (

    -- the days a deal sat in a stage with one amount: a visit cut by the deal's live periods
    -- (from_date inclusive, to_date exclusive, null = still there)
    select
        visits.stage_id,
        live_periods.currency_code,
        live_periods.deal_amount,
        greatest(visits.entered_date, live_periods.valid_from_date) as from_date,
        case
            when visits.exited_date is null then live_periods.valid_to_date
            when live_periods.valid_to_date is null then visits.exited_date
            else least(visits.exited_date, live_periods.valid_to_date)
        end as to_date
    from visits
    inner join live_periods
        on live_periods.deal_id = visits.deal_id

),

movements as (

    -- +1 deal (and its amount) on the day a segment starts, -1 on the day it ends. An incremental
    -- run moves every earlier movement onto its first day: their sum is the opening balance, and a
    -- segment that ended before that day nets to zero
    select stage_id, currency_code, {{ pipeline_movement_day('from_date', start_day) }} as date_day,
        1 as deal_delta, deal_amount as amount_delta
    from segments
    where to_date is null or to_date > from_date
    union all
    select stage_id, currency_code, {{ pipeline_movement_day('to_date', start_day) }} as date_day,
        -1 as deal_delta, -deal_amount as amount_delta
    from segments
    where to_date > from_date

),

daily_movements as (

    select
        stage_id,
        currency_code,
        date_day,
        sum(deal_delta) as deal_delta,
        sum(amount_delta) as amount_delta
    from movements
    group by stage_id, currency_code, date_day

),

stage_changes as (

    -- stage entries and exits during the day, of deals live at the end of it
    select
        visits.stage_id,
        changes.date_day,
        sum(changes.entered) as deals_entered,
        sum(changes.exited) as deals_exited
    from visits
    cross join lateral (
        select visits.entered_date as date_day, 1 as entered, 0 as exited
        union all
        select visits.exited_date, 0, 1 where visits.exited_date is not null
    ) as changes
    inner join live_periods
        on live_periods.deal_id = visits.deal_id
        and {{ customers_is_valid_on('live_periods', 'changes.date_day') }}
    {%- if start_day %}
    where changes.date_day >= '{{ start_day }}'
    {%- endif %}
    group by visits.stage_id, changes.date_day

),

days as (

    select spine.date_day
    from {{ ref('int_dates__spined') }} as spine
    cross join as_of
    where spine.date_day >= (select min(valid_from_date) from {{ ref('int_deals__historized') }} where not is_deleted)
      and spine.date_day <= as_of.as_of_date
    {%- if start_day %}
      and spine.date_day >= '{{ start_day }}'
    {%- endif %}

),

currencies as (

    select distinct currency_code from {{ ref('int_deals__historized') }} where not is_deleted

),

grid as (

    select days.date_day, open_stages.stage_id, currencies.currency_code
    from days
    cross join open_stages
    cross join currencies

),

running as (

    select
        grid.date_day,
        grid.stage_id,
        grid.currency_code,
        sum(coalesce(daily_movements.deal_delta, 0)) over (
            partition by grid.stage_id, grid.currency_code
            order by grid.date_day
            rows between unbounded preceding and current row
        ) as open_deals,
        sum(coalesce(daily_movements.amount_delta, 0)) over (
            partition by grid.stage_id, grid.currency_code
            order by grid.date_day
            rows between unbounded preceding and current row
        ) as open_amount
    from grid
    left join daily_movements
        on daily_movements.stage_id = grid.stage_id
        and daily_movements.currency_code = grid.currency_code
        and daily_movements.date_day = grid.date_day

),

converted as (

    select
        running.date_day,
        running.stage_id,
        sum(running.open_deals) as open_deals,
        sum({{ to_reporting('running.open_amount', 'fx_rates.fx_rate_to_reporting') }}) as open_amount_reporting
    from running
    left join {{ ref('int_fx_rates__filled_daily') }} as fx_rates
        on fx_rates.currency_code = running.currency_code
        and fx_rates.rate_date = running.date_day
    group by running.date_day, running.stage_id

),

final as (

    select
        as_of.as_of_date,
        converted.date_day,
        converted.stage_id,
        open_stages.stage_name,
        open_stages.funnel_step,
        open_stages.win_probability as stage_win_probability,
        converted.open_deals,
        coalesce(stage_changes.deals_entered, 0) as deals_entered,
        coalesce(stage_changes.deals_exited, 0) as deals_exited,
        {{ reporting_currency() }} as reporting_currency,
        converted.open_amount_reporting,
        round(converted.open_amount_reporting * open_stages.win_probability, 2) as weighted_amount_reporting,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from converted
    inner join open_stages
        on open_stages.stage_id = converted.stage_id
    left join stage_changes
        on stage_changes.stage_id = converted.stage_id
        and stage_changes.date_day = converted.date_day
    cross join as_of

)

select * from final
