-- incremental: a run rebuilds the periods of the keys changed in new batches (macro customers_historize)
{{ incremental_by_key('order_id', unique_columns=['order_id', 'period_number'],
                     extra_indexes=[{'columns': ['valid_from_date']}, {'columns': ['valid_to_date']}]) }}

-- type-2 periods of an order's status and soft delete, so a mart as of a past date counts an
-- order as revenue exactly when it did on that date (a later cancellation or delete does not reach back)
with

periods as (

    {{ customers_historize('orders', 'order_id', ['status', 'is_deleted']) }}

),

final as (

    select
        order_id,
        period_number,
        status as order_status,
        is_deleted,
        -- the revenue rule of fct_orders.is_revenue_order, applied to this period's state
        status <> 'cancelled' and not is_deleted as is_revenue_order,
        valid_from,
        valid_to,
        valid_from_date,
        valid_to_date,
        is_current,
        _batch_cutoff_xid
    from periods

)

select * from final
