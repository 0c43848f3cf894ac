with

source as (

    select * from {{ source('crm', 'fx_rates') }}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every fx_rate_id
    select
        *,
        row_number() over (
            partition by fx_rate_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        fx_rate_id,
        rate_date,
        upper(currency) as currency_code,
        usd_per_unit,
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
