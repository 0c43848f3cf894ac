-- Contacts at accounts with their personal data in clear, for crm_analyst_pii only (schema pii).
with

contacts as (

    select * from {{ ref('dim_contact') }}

),

pii_key as (

    select key from {{ source('crm_keys', 'pii_hash_key') }}

),

final as (

    select
        contacts.contact_id,
        contacts.account_id,
        contacts.first_name,
        contacts.last_name,
        contacts.full_name,
        contacts.job_title,
        contacts.email,
        contacts.phone,
        {{ pseudonym(normalised_email('contacts.email')) }} as email_pseudonym,
        {{ pseudonym(normalised_phone('contacts.phone')) }} as phone_pseudonym,
        contacts.is_deleted
    from contacts
    cross join pii_key

)

select * from final
