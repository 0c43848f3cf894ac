with

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

final as (

    select
        account_id,
        account_name,
        domain,
        industry,
        employee_count,
        country_code,
        segment,
        owner_user_id,
        created_at,
        is_deleted
    from accounts

)

select * from final
