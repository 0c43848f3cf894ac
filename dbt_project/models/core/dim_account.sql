-- incremental: a run recomputes the accounts that changed in batches the model has not consumed
-- depends_on: {{ source('crm', 'accounts') }}
{{ incremental_by_key('account_id') }}

with

accounts as (

    select * from {{ ref('stg_crm__accounts') }}
    {%- if is_incremental() %}
    where account_id in ({{ changed_keys('accounts', 'account_id') }})
    {%- endif %}

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
        is_deleted,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from accounts

)

select * from final
