-- incremental: a run recomputes the latest version of the keys that have a version in a batch
-- this model has not consumed yet (macros/incremental_batches.sql); a full build reads all of raw
{{ incremental_by_key('customer_id') }}

with

source as (

    select * from {{ source('crm', 'customers') }}
    {% if is_incremental() %}
    where customer_id in ({{ changed_keys('customers', 'customer_id') }})
    {% endif %}

),

versioned as (

    -- raw_crm is append-only: keep the latest extracted version of every customer_id
    select
        *,
        row_number() over (
            partition by customer_id
            order by updated_at desc, _batch_id desc
        ) as version_rank
    from source

),

final as (

    select
        customer_id,
        account_id,
        first_name,
        last_name,
        first_name || ' ' || last_name as full_name,
        lower(email) as email,
        phone,
        upper(country) as country_code,
        segment,
        status as customer_status,
        acquisition_channel,
        acquisition_campaign_id,
        owner_user_id,
        signed_up_at,
        {{ utc_date("signed_up_at") }} as signed_up_date,
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
