{{ config(indexes=[
    {'columns': ['date_day']},
    {'columns': ['stage_id', 'date_day'], 'unique': true},
]) }}
-- open pipeline by stage at the end of every day, from the first deal's creation to the as-of date.
-- grain: one row per (date_day, open funnel stage). A deal is in a stage at the end of a day when
-- it entered the stage on or before that day and left it after that day (or not by the as-of
-- date). Amounts are summed per currency and converted with each day's FX rate.
with

{{ sales_deal_state_as_of() }},

open_stages as (

    select stage_id, stage_name, stage_order, funnel_step, win_probability
    from {{ ref('dim_deal_stage') }}
    where is_funnel_stage and not is_closed

),

visit_amounts as (

    select
        visits_as_of.stage_id,
        visits_as_of.entered_date,
        visits_as_of.exited_date,
        live_deals_as_of.currency_code,
        live_deals_as_of.deal_amount
    from visits_as_of
    inner join live_deals_as_of
        on live_deals_as_of.deal_id = visits_as_of.deal_id
    inner join open_stages
        on open_stages.stage_id = visits_as_of.stage_id

),

movements as (

    -- +1 deal (and its amount) on the day it entered, -1 on the day it left
    select stage_id, currency_code, entered_date as date_day, 1 as deal_delta, deal_amount as amount_delta, 1 as entered, 0 as exited
    from visit_amounts
    union all
    select stage_id, currency_code, exited_date as date_day, -1 as deal_delta, -deal_amount as amount_delta, 0 as entered, 1 as exited
    from visit_amounts
    where exited_date is not null

),

daily_movements as (

    select
        stage_id,
        currency_code,
        date_day,
        sum(deal_delta) as deal_delta,
        sum(amount_delta) as amount_delta,
        sum(entered) as deals_entered,
        sum(exited) as deals_exited
    from movements
    group by stage_id, currency_code, date_day

),

days as (

    select spine.date_day
    from {{ ref('int_dates__spined') }} as spine
    cross join as_of
    where spine.date_day >= (select min(created_date) from live_deals_as_of)
      and spine.date_day <= as_of.as_of_date

),

currencies as (

    select distinct currency_code from live_deals_as_of

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
        coalesce(daily_movements.deals_entered, 0) as deals_entered,
        coalesce(daily_movements.deals_exited, 0) as deals_exited,
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
        sum(running.deals_entered) as deals_entered,
        sum(running.deals_exited) as deals_exited,
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
        converted.deals_entered,
        converted.deals_exited,
        {{ reporting_currency() }} as reporting_currency,
        converted.open_amount_reporting,
        round(converted.open_amount_reporting * open_stages.win_probability, 2) as weighted_amount_reporting
    from converted
    inner join open_stages
        on open_stages.stage_id = converted.stage_id
    cross join as_of

)

select * from final
