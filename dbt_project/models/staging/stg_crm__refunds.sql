-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('refund_id') }}

with

source as (

    select * from {{ source('crm', 'refunds') }}
    {% if is_incremental() %}
    where refund_id in ({{ changed_keys('refunds', 'refund_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every refund_id
    select
        *,
        row_number() over (
            partition by refund_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        refund_id,
        order_id,
        amount as refund_amount,
        upper(currency) as currency_code,
        reason as refund_reason,
        refunded_at,
        {{ utc_date("refunded_at") }} as refunded_date,
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
