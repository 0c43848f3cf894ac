-- incremental: a run recomputes the deals that changed, or whose stage history, account, customer or FX
-- rate did, in batches the model has not consumed (macro deals_to_refresh); a changed stage list (rare)
-- recomputes every deal, as does a full build
-- depends_on: {{ source('crm', 'deals') }}
-- depends_on: {{ source('crm', 'deal_stage_history') }}
-- depends_on: {{ source('crm', 'accounts') }}
-- depends_on: {{ source('crm', 'customers') }}
-- depends_on: {{ source('crm', 'fx_rates') }}
-- depends_on: {{ source('crm', 'pipeline_stages') }}
{{ incremental_by_key('deal_id') }}

-- one row per deal in its current state. Stage, amount and owner carry a hash and a valid-from
-- time (updated_at) so a type-2 snapshot (check on deal_attributes_hash) can track them.
with

deals as (

    select * from {{ ref('stg_crm__deals') }}
    {%- if is_incremental() and not new_batch_ids('pipeline_stages') %}
    where deal_id in ({{ deals_to_refresh() }})
    {%- endif %}

),

stages as (

    select * from {{ ref('dim_deal_stage') }}

),

accounts as (

    select account_id, segment from {{ ref('stg_crm__accounts') }}

),

customers as (

    select customer_id, segment from {{ ref('stg_crm__customers') }}

),

visits as (

    select * from {{ ref('fct_deal_stage_history') }}
    {%- if is_incremental() %}
    where deal_id in (select deal_id from deals)
    {%- endif %}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__filled_daily') }}

),

visit_summary as (

    select
        deal_id,
        count(*) as stage_visit_count,
        sum(case when is_reopen then 1 else 0 end) as reopen_count,
        sum(skipped_stage_count) as skipped_stage_count,
        max(funnel_step) as furthest_funnel_step,
        max(case when is_current_stage then entered_at end) as current_stage_entered_at
    from visits
    where not is_deleted
    group by deal_id

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
        stages.funnel_step,
        stages.win_probability as stage_win_probability,
        coalesce(dated.source_channel, 'unknown') as source_channel,
        coalesce(accounts.segment, customers.segment, 'unknown') as segment,
        dated.created_at,
        dated.created_date,
        cast({{ dbt.date_trunc('month', 'dated.created_date') }} as date) as created_month,
        dated.expected_close_date,
        dated.closed_at,
        dated.closed_date,
        {{ dbt.datediff('dated.created_date', 'dated.closed_date', 'day') }} as days_to_close,
        visit_summary.current_stage_entered_at,
        coalesce(visit_summary.stage_visit_count, 0) as stage_visit_count,
        coalesce(visit_summary.reopen_count, 0) as reopen_count,
        coalesce(visit_summary.skipped_stage_count, 0) as skipped_stage_count,
        visit_summary.furthest_funnel_step,
        dated.deal_amount,
        dated.currency_code,
        dated.fx_rate_date,
        {{ reporting_currency() }} as reporting_currency,
        fx_rates.fx_rate_to_reporting,
        {{ to_reporting('dated.deal_amount', 'fx_rates.fx_rate_to_reporting') }} as deal_amount_reporting,
        coalesce(stages.is_closed, false) as is_closed,
        not coalesce(stages.is_closed, false) as is_open,
        coalesce(stages.is_won, false) as is_won,
        coalesce(stages.is_lost, false) as is_lost,
        -- type-2 ready: a change of stage, amount, currency or owner changes the hash
        {{ dbt.hash(dbt.concat([
            "coalesce(cast(dated.stage_id as " ~ dbt.type_string() ~ "), '')", "'|'",
            "coalesce(cast(dated.deal_amount as " ~ dbt.type_string() ~ "), '')", "'|'",
            "coalesce(dated.currency_code, '')", "'|'",
            "coalesce(cast(dated.owner_user_id as " ~ dbt.type_string() ~ "), '')"
        ])) }} as deal_attributes_hash,
        dated.updated_at as attributes_valid_from,
        dated.is_deleted,
        -- soft deletes bump updated_at: the day the deal was deleted (as far as the CRM tells)
        case when dated.is_deleted then {{ utc_date('dated.updated_at') }} end as deleted_date,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from dated
    left join stages
        on stages.stage_id = dated.stage_id
    left join accounts
        on accounts.account_id = dated.account_id
    left join customers
        on customers.customer_id = dated.customer_id
    left join visit_summary
        on visit_summary.deal_id = dated.deal_id
    left join fx_rates
        on fx_rates.currency_code = dated.currency_code
        and fx_rates.rate_date = dated.fx_rate_date

)

select * from final
