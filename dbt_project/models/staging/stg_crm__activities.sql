-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('activity_id') }}

with

source as (

    select * from {{ source('crm', 'activities') }}
    {% if is_incremental() %}
    where activity_id in ({{ changed_keys('activities', 'activity_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every activity_id
    select
        *,
        row_number() over (
            partition by activity_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        activity_id,
        activity_type,
        deal_id,
        customer_id,
        contact_id,
        user_id,
        occurred_at,
        {{ utc_date("occurred_at") }} as occurred_date,
        duration_minutes,
        outcome as activity_outcome,
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
