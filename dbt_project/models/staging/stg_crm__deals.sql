-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('deal_id') }}

with

source as (

    select * from {{ source('crm', 'deals') }}
    {% if is_incremental() %}
    where deal_id in ({{ changed_keys('deals', 'deal_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every deal_id
    select
        *,
        row_number() over (
            partition by deal_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        deal_id,
        account_id,
        customer_id,
        lead_id,
        owner_user_id,
        name as deal_name,
        stage_id,
        amount as deal_amount,
        upper(currency) as currency_code,
        source_channel,
        expected_close_date,
        closed_at,
        {{ utc_date("closed_at") }} as closed_date,
        {{ utc_date("created_at") }} as created_date,
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
