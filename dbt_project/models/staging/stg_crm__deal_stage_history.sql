-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('deal_stage_history_id') }}

with

source as (

    select * from {{ source('crm', 'deal_stage_history') }}
    {% if is_incremental() %}
    where deal_stage_history_id in ({{ changed_keys('deal_stage_history', 'deal_stage_history_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every deal_stage_history_id
    select
        *,
        row_number() over (
            partition by deal_stage_history_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        deal_stage_history_id,
        deal_id,
        from_stage_id,
        to_stage_id,
        changed_at,
        {{ utc_date("changed_at") }} as changed_date,
        changed_by_user_id,
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
