-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('web_session_id') }}

with

source as (

    select * from {{ source('crm', 'web_sessions') }}
    {% if is_incremental() %}
    where session_id in ({{ changed_keys('web_sessions', 'session_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every session_id
    select
        *,
        row_number() over (
            partition by session_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        session_id as web_session_id,
        customer_id,
        anonymous_id,
        started_at,
        {{ utc_date("started_at") }} as started_date,
        ended_at,
        page_views,
        landing_page,
        utm_source,
        campaign_id,
        device as device_type,
        created_at,
        updated_at,
        is_deleted,
        _batch_id,
        _extracted_at,
        _deleted_at as hard_deleted_at,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from versioned
    -- "<= 1", not "= 1": postgres estimates "= 1" on a window result at 0.5% of the rows and
    -- then plans nested loops for every join on this view
    where version_rank <= 1

)

select * from final
