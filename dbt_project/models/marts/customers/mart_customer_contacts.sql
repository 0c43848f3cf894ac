-- Customers the CRM knew on the as-of date, with their personal data as crm_analyst may see it: masked to
-- read, pseudonymised to join on (macros/personal_data.sql). The clear values are in
-- pii.pii_customer_contacts, readable by crm_analyst_pii only.
{{ config(
    indexes=[
        {'columns': ['customer_id'], 'unique': true},
        {'columns': ['email_pseudonym']},
    ]
) }}

with

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

customers as (

    {{ customers_as_of('as_of') }}

),

pii_key as (

    select key from {{ source('crm_keys', 'pii_hash_key') }}

),

-- the email and phone normalised once per customer, not in every macro call (the raw email was
-- normalised five times a row, the phone's regexp_replace run three times). Materialized, else
-- postgres inlines the CTE and repeats the expressions (~0.1 s less at scale 10)
normalised_contacts as materialized (

    select
        customers.customer_id,
        customers.account_id,
        customers.is_b2b,
        customers.segment,
        customers.customer_status,
        customers.country_code,
        customers.acquisition_channel,
        customers.signed_up_date,
        customers.is_deleted,
        customers.first_name,
        customers.last_name,
        {{ normalised_email('customers.email') }} as email_normalised,
        {{ normalised_phone('customers.phone') }} as phone_normalised
    from customers

),

final as (

    select
        as_of.as_of_date,
        normalised_contacts.customer_id,
        normalised_contacts.account_id,
        normalised_contacts.is_b2b,
        normalised_contacts.segment,
        normalised_contacts.customer_status,
        normalised_contacts.country_code,
        normalised_contacts.acquisition_channel,
        normalised_contacts.signed_up_date,
        normalised_contacts.is_deleted,
        {{ masked_name('normalised_contacts.first_name', 'normalised_contacts.last_name') }} as name_masked,
        -- the macros normalise again: a no-op on normalised values
        {{ masked_email('normalised_contacts.email_normalised') }} as email_masked,
        split_part(normalised_contacts.email_normalised, '@', 2) as email_domain,
        {{ pseudonym('normalised_contacts.email_normalised') }} as email_pseudonym,
        {{ masked_phone('normalised_contacts.phone_normalised') }} as phone_masked,
        {{ pseudonym('normalised_contacts.phone_normalised') }} as phone_pseudonym
    from normalised_contacts
    cross join as_of
    cross join pii_key

)

select * from final
