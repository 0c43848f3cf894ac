-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('account_id') }}

with

source as (

    select * from {{ source('crm', 'accounts') }}
    {% if is_incremental() %}
    where account_id in ({{ changed_keys('accounts', 'account_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every account_id
    select
        *,
        row_number() over (
            partition by account_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        account_id,
        name as account_name,
        lower(domain) as domain,
        industry,
        employee_count,
        upper(country) as country_code,
        segment,
        owner_user_id,
        created_at,
        updated_at,
        is_deleted,
        _batch_id,
        _extracted_at,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from versioned
    -- "<= 1", not "= 1": postgres estimates "= 1" on a window result at 0.5% of the rows and
    -- then plans nested loops for every join on this view
    where version_rank <= 1

)

select * from final
