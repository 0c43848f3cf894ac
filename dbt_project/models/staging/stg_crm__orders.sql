-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('order_id', extra_indexes=[{'columns': ['ordered_date']}]) }}

with

source as (

    select * from {{ source('crm', 'orders') }}
    {% if is_incremental() %}
    where order_id in ({{ changed_keys('orders', 'order_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every order_id
    select
        *,
        row_number() over (
            partition by order_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        order_id,
        customer_id,
        order_number,
        ordered_at,
        {{ utc_date("ordered_at") }} as ordered_date,
        status as order_status,
        upper(currency) as currency_code,
        sales_channel,
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
