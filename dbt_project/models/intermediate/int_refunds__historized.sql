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
        is_current
    from periods

)

select * from final
