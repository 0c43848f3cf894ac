with

spend as (

    select * from {{ ref('stg_crm__campaign_spend_daily') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__filled_daily') }}

),

final as (

    select
        spend.campaign_spend_id,
        spend.campaign_id,
        spend.spend_date,
        spend.spend_amount,
        spend.currency_code,
        {{ reporting_currency() }} as reporting_currency,
        fx_rates.fx_rate_to_reporting,
        {{ to_reporting('spend.spend_amount', 'fx_rates.fx_rate_to_reporting') }} as spend_amount_reporting,
        spend.impressions,
        spend.clicks,
        {{ safe_divide('spend.clicks', 'spend.impressions') }} as click_through_rate,
        spend.is_deleted
    from spend
    left join fx_rates
        on fx_rates.currency_code = spend.currency_code
        and fx_rates.rate_date = spend.spend_date

)

select * from final
