-- incremental: a run recomputes the refunds that changed, or whose order or FX rate did, in batches the
-- model has not consumed (macro refunds_to_refresh); a full build recomputes everything
-- depends_on: {{ source('crm', 'refunds') }}
-- depends_on: {{ source('crm', 'orders') }}
-- depends_on: {{ source('crm', 'fx_rates') }}
{{ incremental_by_key('refund_id') }}

with

refunds as (

    select * from {{ ref('stg_crm__refunds') }}
    {%- if is_incremental() %}
    where refund_id in ({{ refunds_to_refresh() }})
    {%- endif %}

),

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__filled_daily') }}

),

final as (

    select
        refunds.refund_id,
        refunds.order_id,
        orders.customer_id,
        refunds.refunded_at,
        refunds.refunded_date,
        refunds.refund_reason,
        refunds.refund_amount,
        refunds.currency_code,
        {{ reporting_currency() }} as reporting_currency,
        fx_rates.fx_rate_to_reporting,
        {{ to_reporting('refunds.refund_amount', 'fx_rates.fx_rate_to_reporting') }} as refund_amount_reporting,
        refunds.is_deleted,
        -- a refund reduces revenue only when it and its order count (order not cancelled, not deleted)
        not refunds.is_deleted
            and orders.order_id is not null
            and not orders.is_deleted
            and orders.order_status <> 'cancelled' as is_revenue_refund,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from refunds
    left join orders
        on orders.order_id = refunds.order_id
    left join fx_rates
        on fx_rates.currency_code = refunds.currency_code
        and fx_rates.rate_date = refunds.refunded_date

)

select * from final
