with

source as (

    select * from {{ source('crm', 'price_list_entries') }}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every price_list_entry_id
    select
        *,
        row_number() over (
            partition by price_list_entry_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        price_list_entry_id,
        price_list as price_list_name,
        product_id,
        upper(currency) as currency_code,
        unit_price,
        valid_from as valid_from_date,
        valid_to as valid_to_date,
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
