-- incremental: a run rebuilds the periods of the keys changed in new batches (macro customers_historize)
{{ incremental_by_key('refund_id', unique_columns=['refund_id', 'period_number']) }}

-- type-2 periods of a refund's soft delete, so a mart as of a past date sees the refund as it was then
with

periods as (

    {{ customers_historize('refunds', 'refund_id', ['is_deleted']) }}

),

final as (

    select
        refund_id,
        period_number,
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
