-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('campaign_touch_id') }}

with

source as (

    select * from {{ source('crm', 'campaign_touches') }}
    {% if is_incremental() %}
    where touch_id in ({{ changed_keys('campaign_touches', 'touch_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every touch_id
    select
        *,
        row_number() over (
            partition by touch_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        touch_id as campaign_touch_id,
        campaign_id,
        customer_id,
        lead_id,
        touch_type,
        touched_at,
        {{ utc_date("touched_at") }} as touched_date,
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
