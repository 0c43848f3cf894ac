with

source as (

    select * from {{ source('crm', 'products') }}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every product_id
    select
        *,
        row_number() over (
            partition by product_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        product_id,
        sku,
        name as product_name,
        category as product_category,
        is_subscription,
        unit_cost_usd,
        is_active,
        created_at,
        updated_at,
        is_deleted,
        _batch_id,
        _extracted_at
    from versioned
    -- "<= 1", not "= 1": postgres estimates "= 1" on a window result at 0.5% of the rows and
    -- then plans nested loops for every join on this view
    where version_rank <= 1

)

select * from final
