-- incremental: a run rebuilds the periods of the keys changed in new batches (macro customers_historize)
{{ incremental_by_key('deal_id', unique_columns=['deal_id', 'period_number']) }}

-- type-2 periods of a deal's pipeline stage, amount, owner and soft delete
with

periods as (

    {{ customers_historize('deals', 'deal_id', ['stage_id', 'amount', 'currency', 'owner_user_id', 'is_deleted']) }}

),

final as (

    select
        deal_id,
        period_number,
        stage_id,
        amount as deal_amount,
        upper(currency) as currency_code,
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
