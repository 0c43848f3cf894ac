-- funnel counts never increase down the stages: within every slice, a later funnel step has no
-- more deals reached (nor won) than the step before it
with

funnel as (

    select * from {{ ref('mart_funnel_conversion') }}

),

final as (

    select
        this_step.dimension,
        this_step.dimension_value,
        this_step.funnel_step,
        this_step.deals_reached,
        next_step.deals_reached as next_step_deals_reached
    from funnel as this_step
    inner join funnel as next_step
        on next_step.dimension = this_step.dimension
        and next_step.dimension_value = this_step.dimension_value
        and next_step.funnel_step = this_step.funnel_step + 1
    where next_step.deals_reached > this_step.deals_reached
       or next_step.deals_won > this_step.deals_won

)

select * from final
