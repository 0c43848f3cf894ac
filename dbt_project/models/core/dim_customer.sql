with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

final as (

    select
        customers.customer_id,
        customers.first_name,
        customers.last_name,
        customers.full_name,
        customers.email,
        customers.phone,
        customers.country_code,
        customers.segment,
        customers.customer_status,
        customers.acquisition_channel,
        customers.acquisition_campaign_id,
        customers.owner_user_id,
        customers.account_id,
        accounts.account_name,
        customers.account_id is not null as is_b2b,
        customers.signed_up_at,
        customers.signed_up_date,
        customers.created_at,
        customers.is_deleted
    from customers
    left join accounts
        on accounts.account_id = customers.account_id

)

select * from final
