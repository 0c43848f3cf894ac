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

final as (

    select
        as_of.as_of_date,
        customers.customer_id,
        customers.account_id,
        customers.is_b2b,
        customers.segment,
        customers.customer_status,
        customers.country_code,
        customers.acquisition_channel,
        customers.signed_up_date,
        customers.is_deleted,
        {{ masked_name('customers.first_name', 'customers.last_name') }} as name_masked,
        {{ masked_email('customers.email') }} as email_masked,
        split_part({{ normalised_email('customers.email') }}, '@', 2) as email_domain,
        {{ pseudonym(normalised_email('customers.email')) }} as email_pseudonym,
        {{ masked_phone('customers.phone') }} as phone_masked,
        {{ pseudonym(normalised_phone('customers.phone')) }} as phone_pseudonym
    from customers
    cross join as_of
    cross join pii_key

)

select * from final
