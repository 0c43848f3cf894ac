with

source as (

    select * from {{ source('crm', 'campaigns') }}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every campaign_id
    select
        *,
        row_number() over (
            partition by campaign_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        campaign_id,
        name as campaign_name,
        channel as campaign_channel,
        start_date,
        end_date,
        budget as budget_amount,
        upper(currency) as currency_code,
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
