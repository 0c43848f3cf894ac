-- Current customers' personal data in clear, for crm_analyst_pii only (schema pii), with the same
-- pseudonyms as mart_customer_contacts so a pseudonym found in the marts can be resolved here.
with

customers as (

    select * from {{ ref('dim_customer_current') }}

),

pii_key as (

    select key from {{ source('crm_keys', 'pii_hash_key') }}

),

final as (

    select
        customers.customer_id,
        customers.account_id,
        customers.first_name,
        customers.last_name,
        customers.full_name,
        customers.email,
        customers.phone,
        {{ pseudonym(normalised_email('customers.email')) }} as email_pseudonym,
        {{ pseudonym(normalised_phone('customers.phone')) }} as phone_pseudonym,
        customers.is_deleted
    from customers
    cross join pii_key

)

select * from final
