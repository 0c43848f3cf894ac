-- one row per day between the vars calendar_start_date and calendar_end_date
with

spine as (

    {{ dbt.date_spine(
        'day',
        "cast('" ~ var('calendar_start_date') ~ "' as date)",
        "cast('" ~ var('calendar_end_date') ~ "' as date)"
    ) }}

),

final as (

    select cast(date_day as date) as date_day
    from spine

)

select * from final
