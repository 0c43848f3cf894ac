with

dates as (

    select date_day from {{ ref('int_dates__spined') }}

),

final as (

    select
        date_day,
        cast(extract(year from date_day) as integer) as year_number,
        cast(extract(quarter from date_day) as integer) as quarter_number,
        cast(extract(month from date_day) as integer) as month_number,
        cast(extract(day from date_day) as integer) as day_of_month,
        cast(extract(isodow from date_day) as integer) as iso_day_of_week,
        cast(extract(week from date_day) as integer) as iso_week_number,
        trim(to_char(date_day, 'Month')) as month_name,
        trim(to_char(date_day, 'Day')) as day_name,
        cast({{ dbt.date_trunc('week', 'date_day') }} as date) as week_start_date,
        cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month_start_date,
        cast({{ dbt.date_trunc('quarter', 'date_day') }} as date) as quarter_start_date,
        cast({{ dbt.date_trunc('year', 'date_day') }} as date) as year_start_date,
        cast({{ dbt.last_day('date_day', 'month') }} as date) as month_end_date,
        extract(isodow from date_day) in (6, 7) as is_weekend
    from dates

)

select * from final
