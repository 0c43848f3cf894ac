{{ config(indexes=[
    {'columns': ['dimension', 'dimension_value'], 'unique': true},
]) }}
-- win rate, sales cycle, pipeline and velocity as of the as-of date, for every slice of the deals.
-- grain: one row per (dimension, dimension_value); see macro sales_slice_columns.
-- Counts every live deal created on or before the as-of date; won / lost / open is its state at
-- the end of that date.
with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

deals_as_of as (

    select * from {{ ref('int_deals__state_as_of') }}

),

deal_slices as (

    -- only the columns aggregated below: the CTE is read twice, so postgres materializes it
    select
        is_open,
        is_closed,
        is_won,
        is_lost,
        deal_amount_reporting,
        stage_win_probability,
        sales_cycle_days{{ sales_slice_columns() }}
    from deals_as_of

),

aggregated as (

    select
        {{ sales_slice_dimension() }} as dimension,
        {{ sales_slice_value() }} as dimension_value,
        count(*) as deals_created,
        sum(case when is_open then 1 else 0 end) as deals_open,
        sum(case when is_closed then 1 else 0 end) as deals_closed,
        sum(case when is_won then 1 else 0 end) as deals_won,
        sum(case when is_lost then 1 else 0 end) as deals_lost,
        coalesce(sum(case when is_won then deal_amount_reporting end), 0) as won_amount_reporting,
        coalesce(sum(case when is_closed then deal_amount_reporting end), 0) as closed_amount_reporting,
        coalesce(sum(case when is_open then deal_amount_reporting end), 0) as open_pipeline_amount_reporting,
        coalesce(sum(case when is_open then deal_amount_reporting * stage_win_probability end), 0) as weighted_pipeline_amount_reporting,
        avg(case when is_won then deal_amount_reporting end) as avg_won_amount_reporting,
        avg(case when is_won then cast(sales_cycle_days as {{ dbt.type_numeric() }}) end) as avg_sales_cycle_days_won,
        avg(case when is_closed then cast(sales_cycle_days as {{ dbt.type_numeric() }}) end) as avg_sales_cycle_days_closed
    from deal_slices
    group by {{ sales_grouping_sets([]) }}
    -- the empty grouping set yields a row even without deals
    having count(*) > 0

),

won_cycles as (

    select
        {{ sales_slice_dimension() }} as dimension,
        {{ sales_slice_value() }} as dimension_value,
        {{ sales_percentile('sales_cycle_days', 0.5) }} as median_sales_cycle_days_won
    from deal_slices
    where is_won
    group by {{ sales_grouping_sets([]) }}
    having count(*) > 0

),

rated as (

    select
        aggregated.*,
        won_cycles.median_sales_cycle_days_won,
        {{ safe_divide('aggregated.deals_won', 'aggregated.deals_closed') }} as win_rate_by_count,
        {{ safe_divide('aggregated.won_amount_reporting', 'aggregated.closed_amount_reporting') }} as win_rate_by_amount
    from aggregated
    left join won_cycles
        on won_cycles.dimension = aggregated.dimension
        and won_cycles.dimension_value = aggregated.dimension_value

),

final as (

    select
        as_of.as_of_date,
        rated.dimension,
        rated.dimension_value,
        rated.deals_created,
        rated.deals_open,
        rated.deals_closed,
        rated.deals_won,
        rated.deals_lost,
        round(rated.win_rate_by_count, 4) as win_rate_by_count,
        round(rated.win_rate_by_amount, 4) as win_rate_by_amount,
        {{ reporting_currency() }} as reporting_currency,
        round(rated.won_amount_reporting, 2) as won_amount_reporting,
        round(rated.closed_amount_reporting, 2) as closed_amount_reporting,
        round(rated.open_pipeline_amount_reporting, 2) as open_pipeline_amount_reporting,
        round(rated.weighted_pipeline_amount_reporting, 2) as weighted_pipeline_amount_reporting,
        round(rated.avg_won_amount_reporting, 2) as avg_won_amount_reporting,
        round(rated.avg_sales_cycle_days_won, 2) as avg_sales_cycle_days_won,
        round(cast(rated.median_sales_cycle_days_won as {{ dbt.type_numeric() }}), 2) as median_sales_cycle_days_won,
        round(rated.avg_sales_cycle_days_closed, 2) as avg_sales_cycle_days_closed,
        -- pipeline velocity: open deals x average won amount x win rate / average won cycle (days)
        round(
            rated.deals_open * rated.avg_won_amount_reporting * rated.win_rate_by_count
            / nullif(rated.avg_sales_cycle_days_won, 0),
            2
        ) as pipeline_velocity_reporting_per_day
    from rated
    cross join as_of

)

select * from final
