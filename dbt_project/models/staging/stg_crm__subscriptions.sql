-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('subscription_id') }}

with

source as (

    select * from {{ source('crm', 'subscriptions') }}
    {% if is_incremental() %}
    where subscription_id in ({{ changed_keys('subscriptions', 'subscription_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every subscription_id
    select
        *,
        row_number() over (
            partition by subscription_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        subscription_id,
        account_id,
        customer_id,
        product_id,
        previous_subscription_id,
        plan_name,
        mrr_amount,
        upper(currency) as currency_code,
        started_at,
        {{ utc_date("started_at") }} as started_date,
        ended_at,
        {{ utc_date("ended_at") }} as ended_date,
        status as subscription_status,
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
