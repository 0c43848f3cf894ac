with

contacts as (

    select * from {{ ref('stg_crm__contacts') }}

),

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

final as (

    select
        contacts.contact_id,
        contacts.account_id,
        accounts.account_name,
        contacts.first_name,
        contacts.last_name,
        contacts.full_name,
        contacts.email,
        contacts.phone,
        contacts.job_title,
        contacts.created_at,
        contacts.is_deleted
    from contacts
    left join accounts
        on accounts.account_id = contacts.account_id

)

select * from final
