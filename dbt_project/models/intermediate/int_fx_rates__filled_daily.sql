-- one rate per (day, currency) from the currency's first rate on: the latest rate on or before
-- the day, so facts convert with an equi-join instead of a range join
with

dates as (

    select date_day from {{ ref('int_dates__spined') }}

),

rates as (

    select
        rate_date,
        currency_code,
        usd_per_unit
    from {{ ref('stg_crm__fx_rates') }}
    where not is_deleted
      and currency_code <> 'USD'

),

currencies as (

    select
        currency_code,
        min(rate_date) as first_rate_date
    from rates
    group by currency_code

),

currency_days as (

    select
        currencies.currency_code,
        dates.date_day
    from currencies
    inner join dates
        on dates.date_day >= currencies.first_rate_date

),

grouped as (

    -- every known rate opens a group that runs until the next known rate
    select
        currency_days.currency_code,
        currency_days.date_day,
        rates.rate_date,
        rates.usd_per_unit,
        count(rates.rate_date) over (
            partition by currency_days.currency_code
            order by currency_days.date_day
            rows between unbounded preceding and current row
        ) as rate_group
    from currency_days
    left join rates
        on rates.currency_code = currency_days.currency_code
        and rates.rate_date = currency_days.date_day

),

filled as (

    select
        date_day,
        currency_code,
        max(usd_per_unit) over (partition by currency_code, rate_group) as usd_per_unit,
        max(rate_date) over (partition by currency_code, rate_group) as source_rate_date
    from grouped

),

usd as (

    -- USD is the base currency: 1 by definition, whether or not the CRM lists it
    select
        date_day,
        'USD' as currency_code,
        cast(1 as {{ dbt.type_numeric() }}) as usd_per_unit,
        date_day as source_rate_date
    from dates

),

all_currencies as (

    select * from filled
    union all
    select * from usd

),

reporting as (

    select
        date_day,
        usd_per_unit as reporting_usd_per_unit
    from all_currencies
    where currency_code = {{ reporting_currency() }}

),

final as (

    select
        all_currencies.date_day as rate_date,
        all_currencies.currency_code,
        all_currencies.usd_per_unit,
        all_currencies.source_rate_date,
        {{ dbt.datediff('all_currencies.source_rate_date', 'all_currencies.date_day', 'day') }} as rate_age_days,
        {{ reporting_currency() }} as reporting_currency,
        round(all_currencies.usd_per_unit / reporting.reporting_usd_per_unit, 10) as fx_rate_to_reporting
    from all_currencies
    inner join reporting
        on reporting.date_day = all_currencies.date_day

)

select * from final
