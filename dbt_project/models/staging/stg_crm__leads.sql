-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('lead_id') }}

with

source as (

    select * from {{ source('crm', 'leads') }}
    {% if is_incremental() %}
    where lead_id in ({{ changed_keys('leads', 'lead_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every lead_id
    select
        *,
        row_number() over (
            partition by lead_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        lead_id,
        first_name,
        last_name,
        lower(email) as email,
        company_name,
        source_channel,
        campaign_id,
        status as lead_status,
        owner_user_id,
        converted_customer_id,
        converted_at,
        {{ utc_date("converted_at") }} as converted_date,
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
