-- incremental: a run rebuilds the periods of the keys changed in new batches (macro customers_historize)
{{ incremental_by_key('customer_id', unique_columns=['customer_id', 'period_number']) }}

-- type-2 periods of the customer attributes tracked in dim_customer (segment, owner, status,
-- country, soft delete), read from the append-only raw history: staging only holds the latest version
with

periods as (

    {{ customers_historize('customers', 'customer_id', ['segment', 'owner_user_id', 'status', 'country', 'is_deleted']) }}

),

final as (

    select
        customer_id,
        period_number,
        segment,
        owner_user_id,
        status as customer_status,
        upper(country) as country_code,
        is_deleted,
        valid_from,
        valid_to,
        valid_from_date,
        valid_to_date,
        is_current,
        _batch_cutoff_xid
    from periods

)

select * from final
