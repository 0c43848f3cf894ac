with

campaigns as (

    select * from {{ ref('stg_crm__campaigns') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__filled_daily') }}

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.campaign_channel,
        campaigns.start_date,
        campaigns.end_date,
        campaigns.end_date is null as is_open_ended,
        campaigns.budget_amount,
        campaigns.currency_code,
        -- the budget is converted with the rate of the campaign's start date
        {{ reporting_currency() }} as reporting_currency,
        fx_rates.fx_rate_to_reporting,
        {{ to_reporting('campaigns.budget_amount', 'fx_rates.fx_rate_to_reporting') }} as budget_amount_reporting,
        campaigns.created_at,
        campaigns.is_deleted
    from campaigns
    left join fx_rates
        on fx_rates.currency_code = campaigns.currency_code
        and fx_rates.rate_date = campaigns.start_date

)

select * from final
