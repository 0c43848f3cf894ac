-- incremental: a run rebuilds the periods of the keys changed in new batches (macro customers_historize)
{{ incremental_by_key('account_id', unique_columns=['account_id', 'period_number']) }}

-- type-2 periods of an account's segment, owner and soft delete (accounts have no status in the CRM)
with

periods as (

    {{ customers_historize('accounts', 'account_id', ['segment', 'owner_user_id', 'is_deleted']) }}

),

final as (

    select
        account_id,
        period_number,
        segment,
        owner_user_id,
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
