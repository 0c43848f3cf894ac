with

activities as (

    select * from {{ ref('stg_crm__activities') }}

),

final as (

    select
        activity_id,
        activity_type,
        deal_id,
        customer_id,
        contact_id,
        user_id,
        occurred_at,
        occurred_date,
        duration_minutes,
        activity_outcome,
        is_deleted
    from activities

)

select * from final
