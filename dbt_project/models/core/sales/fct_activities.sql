-- incremental: a run rewrites the rows changed in batches the model has not consumed (macro changed_keys)
-- depends_on: {{ source('crm', 'activities') }}
{{ incremental_by_key('activity_id') }}

with

activities as (

    select * from {{ ref('stg_crm__activities') }}
    {%- if is_incremental() %}
    where activity_id in ({{ changed_keys('activities', 'activity_id') }})
    {%- endif %}

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
        case when is_deleted then {{ utc_date('updated_at') }} end as deleted_date,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from activities

)

select * from final
