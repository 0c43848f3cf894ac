-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('ticket_id') }}

with

source as (

    select * from {{ source('crm', 'support_tickets') }}
    {% if is_incremental() %}
    where ticket_id in ({{ changed_keys('support_tickets', 'ticket_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every ticket_id
    select
        *,
        row_number() over (
            partition by ticket_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        ticket_id,
        customer_id,
        opened_at,
        {{ utc_date("opened_at") }} as opened_date,
        closed_at,
        {{ utc_date("closed_at") }} as closed_date,
        priority as ticket_priority,
        category as ticket_category,
        status as ticket_status,
        satisfaction_score,
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
