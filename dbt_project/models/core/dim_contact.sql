-- incremental: a run recomputes the contacts that changed, or whose account did, in batches the model
-- has not consumed (macro contacts_to_refresh); a full build recomputes everything
-- depends_on: {{ source('crm', 'contacts') }}
-- depends_on: {{ source('crm', 'accounts') }}
{{ incremental_by_key('contact_id') }}

with

contacts as (

    select * from {{ ref('stg_crm__contacts') }}
    {%- if is_incremental() %}
    where contact_id in ({{ contacts_to_refresh() }})
    {%- endif %}

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
        contacts.is_deleted,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from contacts
    left join accounts
        on accounts.account_id = contacts.account_id

)

select * from final
