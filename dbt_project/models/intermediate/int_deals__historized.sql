-- incremental: a run rebuilds the periods of the keys changed in new batches (macro customers_historize)
{{
    config(
        materialized='incremental',
        unique_key='deal_id',
        incremental_strategy='delete+insert',
        indexes=[
            {'columns': ['deal_id', 'period_number'], 'unique': True},
            {'columns': ['_batch_cutoff_xid']},
        ],
    )
}}

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
