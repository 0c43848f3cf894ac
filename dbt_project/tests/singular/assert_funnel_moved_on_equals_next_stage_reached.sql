-- a deal moves on from a funnel step exactly when it reaches the next one (within every slice)
with

funnel as (

    select * from {{ ref('mart_funnel_conversion') }}

),

final as (

    select
        this_step.dimension,
        this_step.dimension_value,
        this_step.funnel_step,
        this_step.deals_moved_on,
        next_step.deals_reached as next_step_deals_reached
    from funnel as this_step
    inner join funnel as next_step
        on next_step.dimension = this_step.dimension
        and next_step.dimension_value = this_step.dimension_value
        and next_step.funnel_step = this_step.funnel_step + 1
    where this_step.deals_moved_on <> next_step.deals_reached

)

select * from final
