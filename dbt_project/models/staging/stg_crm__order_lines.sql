-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('order_line_id', extra_indexes=[{'columns': ['order_id']}]) }}

with

source as (

    select * from {{ source('crm', 'order_lines') }}
    {% if is_incremental() %}
    where order_line_id in ({{ changed_keys('order_lines', 'order_line_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every order_line_id
    select
        *,
        row_number() over (
            partition by order_line_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        order_line_id,
        order_id,
        product_id,
        quantity,
        unit_price,
        discount_amount,
        quantity * unit_price as gross_amount,
        quantity * unit_price - discount_amount as net_amount,
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
