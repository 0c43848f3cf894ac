with

history as (

    select * from {{ ref('stg_crm__deal_stage_history') }}

),

stages as (

    select * from {{ ref('dim_deal_stage') }}

),

sequenced as (

    -- the next change of the same deal closes this stage (deleted changes are ignored)
    select
        *,
        case
            when not is_deleted then
                lead(changed_at) over (
                    partition by deal_id, is_deleted
                    order by changed_at, deal_stage_history_id
                )
        end as next_changed_at,
        case
            when not is_deleted then
                row_number() over (
                    partition by deal_id, is_deleted
                    order by changed_at, deal_stage_history_id
                )
        end as change_number
    from history

),

final as (

    select
        sequenced.deal_stage_history_id,
        sequenced.deal_id,
        sequenced.change_number,
        sequenced.from_stage_id,
        sequenced.to_stage_id,
        to_stage.stage_name as to_stage_name,
        to_stage.funnel_step as to_funnel_step,
        coalesce(to_stage.is_won, false) as is_to_won,
        coalesce(to_stage.is_lost, false) as is_to_lost,
        sequenced.changed_at,
        sequenced.changed_date,
        sequenced.changed_by_user_id,
        sequenced.next_changed_at,
        {{ utc_date('sequenced.next_changed_at') }} as next_changed_date,
        {{ dbt.datediff('sequenced.changed_date', utc_date('sequenced.next_changed_at'), 'day') }} as days_in_stage,
        sequenced.next_changed_at is null and not sequenced.is_deleted as is_current_stage,
        sequenced.is_deleted
    from sequenced
    left join stages as to_stage
        on to_stage.stage_id = sequenced.to_stage_id

)

select * from final
