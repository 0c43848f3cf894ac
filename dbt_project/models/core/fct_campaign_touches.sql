with

touches as (

    select * from {{ ref('stg_crm__campaign_touches') }}

),

final as (

    select
        campaign_touch_id,
        campaign_id,
        customer_id,
        lead_id,
        touch_type,
        touched_at,
        touched_date,
        is_deleted
    from touches

)

select * from final
