-- one FX rate per currency and calendar month: the rate of the month's first day, or the
-- currency's first known rate for months that start before it. Monthly amounts (MRR) convert with
-- it, so a month's reporting amount is fixed once the month has started
with

daily_rates as (

    select * from {{ ref('int_fx_rates__filled_daily') }}

),

months as (

    select distinct month_start_date
    from (
        select cast({{ dbt.date_trunc('month', 'rate_date') }} as date) as month_start_date
        from daily_rates
    ) as rate_months

),

first_rates as (

    select
        currency_code,
        min(rate_date) as first_rate_date
    from daily_rates
    group by currency_code

),

month_rates as (

    select
        months.month_start_date,
        first_rates.currency_code,
        case
            when months.month_start_date < first_rates.first_rate_date then first_rates.first_rate_date
            else months.month_start_date
        end as fx_rate_date
    from months
    cross join first_rates

),

final as (

    select
        month_rates.month_start_date,
        month_rates.currency_code,
        month_rates.fx_rate_date,
        daily_rates.reporting_currency,
        daily_rates.fx_rate_to_reporting
    from month_rates
    inner join daily_rates
        on daily_rates.currency_code = month_rates.currency_code
        and daily_rates.rate_date = month_rates.fx_rate_date

)

select * from final
