-- the day-grain time spine MetricFlow joins metrics to (one row per calendar day of dim_date's range)
with

days as (

    select date_day from {{ ref('int_dates__spined') }}

),

final as (

    select cast(date_day as date) as date_day
    from days

)

select * from final
