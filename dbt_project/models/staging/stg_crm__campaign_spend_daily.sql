with

source as (

    select * from {{ source('crm', 'campaign_spend_daily') }}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every campaign_spend_id
    select
        *,
        row_number() over (
            partition by campaign_spend_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        campaign_spend_id,
        campaign_id,
        spend_date,
        amount as spend_amount,
        upper(currency) as currency_code,
        impressions,
        clicks,
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
