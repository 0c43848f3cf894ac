-- incremental: a run rebuilds the visits of the deals whose stage history changed in batches the model
-- has not consumed (macro changed_keys)
-- depends_on: {{ source('crm', 'deal_stage_history') }}
-- depends_on: {{ source('crm', 'pipeline_stages') }}
{{ incremental_by_key('deal_id', unique_columns=['deal_stage_history_id'],
                     extra_indexes=[{'columns': ['deal_id']}, {'columns': ['entered_date']}, {'columns': ['exited_date']}]) }}

-- one row per stage visit: every recorded stage change opens a visit of the stage it entered, and
-- the deal's next (non-deleted) change closes it. Skips (a forward jump over funnel stages that are
-- never entered) and reopens (a move back to an earlier stage, including out of a closed stage) are
-- flagged on the transition that made them.
with

history as (

    select * from {{ ref('stg_crm__deal_stage_history') }}
    {%- if is_incremental() %}
    -- a changed stage list (rare) reaches every deal
    {%- if not new_batch_ids('pipeline_stages') %}
    where deal_id in ({{ changed_keys('deal_stage_history', 'deal_id') }})
    {%- endif %}
    {%- endif %}

),

stages as (

    select * from {{ ref('dim_deal_stage') }}

),

sequenced as (

    -- deleted changes are kept and flagged but take no part in the sequence of visits
    select
        *,
        case
            when not is_deleted then
                row_number() over (
                    partition by deal_id, is_deleted
                    order by changed_at, deal_stage_history_id
                )
        end as visit_number,
        case
            when not is_deleted then
                lag(to_stage_id) over (
                    partition by deal_id, is_deleted
                    order by changed_at, deal_stage_history_id
                )
        end as previous_stage_id,
        case
            when not is_deleted then
                lead(to_stage_id) over (
                    partition by deal_id, is_deleted
                    order by changed_at, deal_stage_history_id
                )
        end as next_stage_id,
        case
            when not is_deleted then
                lead(changed_at) over (
                    partition by deal_id, is_deleted
                    order by changed_at, deal_stage_history_id
                )
        end as next_changed_at
    from history

),

joined as (

    select
        sequenced.*,
        stage.stage_name,
        stage.stage_order,
        stage.funnel_step,
        stage.is_closed,
        stage.is_won,
        stage.is_lost,
        previous_stage.stage_name as from_stage_name,
        previous_stage.funnel_step as from_funnel_step,
        coalesce(previous_stage.is_closed, false) as is_from_closed,
        next_stage.stage_name as next_stage_name
    from sequenced
    left join stages as stage
        on stage.stage_id = sequenced.to_stage_id
    left join stages as previous_stage
        on previous_stage.stage_id = sequenced.previous_stage_id
    left join stages as next_stage
        on next_stage.stage_id = sequenced.next_stage_id

),

flagged as (

    select
        *,
        -- funnel stages jumped over: a forward move between funnel stages (or a first stage after
        -- step 1) enters none of the steps in between
        case
            when not is_deleted and funnel_step is not null
                and (previous_stage_id is null or from_funnel_step is not null)
                and funnel_step > coalesce(from_funnel_step, 0) + 1
                then funnel_step - coalesce(from_funnel_step, 0) - 1
            else 0
        end as skipped_stage_count,
        -- a reopen: back out of a closed stage into an open one, or back to an earlier funnel step
        case
            when is_deleted or previous_stage_id is null then false
            when is_from_closed and not coalesce(is_closed, false) then true
            when from_funnel_step is not null and funnel_step is not null
                and funnel_step < from_funnel_step then true
            else false
        end as is_reopen
    from joined

),

final as (

    select
        deal_stage_history_id,
        deal_id,
        visit_number,
        to_stage_id as stage_id,
        stage_name,
        stage_order,
        funnel_step,
        previous_stage_id as from_stage_id,
        from_stage_name,
        from_funnel_step,
        from_stage_id as recorded_from_stage_id,
        next_stage_id,
        next_stage_name,
        changed_at as entered_at,
        changed_date as entered_date,
        next_changed_at as exited_at,
        {{ utc_date('next_changed_at') }} as exited_date,
        round(
            cast({{ dbt.datediff('changed_at', 'next_changed_at', 'second') }} as {{ dbt.type_numeric() }}) / 86400,
            4
        ) as duration_days,
        {{ dbt.datediff('changed_date', utc_date('next_changed_at'), 'day') }} as days_in_stage,
        skipped_stage_count > 0 as is_skip,
        skipped_stage_count,
        is_reopen,
        is_reopen and is_from_closed as is_reopen_from_closed,
        coalesce(is_closed, false) as is_closed_stage,
        coalesce(is_won, false) as is_won_stage,
        coalesce(is_lost, false) as is_lost_stage,
        next_changed_at is null and not is_deleted as is_current_stage,
        changed_by_user_id,
        is_deleted,
        -- soft deletes bump updated_at: the day the row was deleted (as far as the CRM tells)
        case when is_deleted then {{ utc_date('updated_at') }} end as deleted_date,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from flagged

)

select * from final
