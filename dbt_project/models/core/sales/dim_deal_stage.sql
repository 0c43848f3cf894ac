with

stages as (

    select * from {{ ref('stg_crm__pipeline_stages') }}

),

flagged as (

    select
        *,
        -- the funnel runs through the open stages and ends in won; lost stages are exits, not steps
        not is_lost and not is_deleted as is_funnel_stage
    from stages

),

final as (

    select
        stage_id,
        stage_name,
        stage_order,
        win_probability,
        is_closed,
        is_won,
        is_lost,
        is_funnel_stage,
        case
            when is_funnel_stage then
                dense_rank() over (
                    partition by is_funnel_stage
                    order by is_won, stage_order
                )
        end as funnel_step,
        is_deleted
    from flagged

)

select * from final
