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
        activity_type = 'call' as is_call,
        activity_type = 'meeting' as is_meeting,
        activity_type = 'demo' as is_demo,
        activity_type = 'email' as is_email,
        is_deleted,
        -- soft deletes bump updated_at: the day the activity was deleted (as far as the CRM tells)
        case when is_deleted then {{ utc_date('updated_at') }} end as deleted_date
    from activities

)

select * from final
