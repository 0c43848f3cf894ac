with

deals as (

    select * from {{ ref('stg_crm__deals') }}

),

stages as (

    select * from {{ ref('stg_crm__pipeline_stages') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__filled_daily') }}

),

dated as (

    select
        deals.*,
        -- closed deals convert at their close date, open deals at their creation date
        coalesce(deals.closed_date, deals.created_date) as fx_rate_date
    from deals

),

final as (

    select
        dated.deal_id,
        dated.deal_name,
        dated.account_id,
        dated.customer_id,
        dated.lead_id,
        dated.owner_user_id,
        dated.stage_id,
        stages.stage_name,
        dated.source_channel,
        dated.created_at,
        dated.created_date,
        dated.expected_close_date,
        dated.closed_at,
        dated.closed_date,
        {{ dbt.datediff('dated.created_date', 'dated.closed_date', 'day') }} as days_to_close,
        dated.deal_amount,
        dated.currency_code,
        dated.fx_rate_date,
        {{ reporting_currency() }} as reporting_currency,
        fx_rates.fx_rate_to_reporting,
        {{ to_reporting('dated.deal_amount', 'fx_rates.fx_rate_to_reporting') }} as deal_amount_reporting,
        coalesce(stages.is_closed, false) as is_closed,
        coalesce(stages.is_won, false) as is_won,
        coalesce(stages.is_lost, false) as is_lost,
        dated.is_deleted
    from dated
    left join stages
        on stages.stage_id = dated.stage_id
    left join fx_rates
        on fx_rates.currency_code = dated.currency_code
        and fx_rates.rate_date = dated.fx_rate_date

)

select * from final
