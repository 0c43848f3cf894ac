-- incremental: a run recomputes the rows whose inputs changed in batches the model has not consumed
-- (macros/orders_incremental.sql); a full build recomputes everything
-- depends_on: {{ source('crm', 'orders') }}
-- depends_on: {{ source('crm', 'order_lines') }}
-- depends_on: {{ source('crm', 'fx_rates') }}
{{ incremental_by_key('order_line_id', extra_indexes=[{'columns': ['order_id']}]) }}

-- order lines with their order's context and amounts in the reporting currency, converted with
-- the FX rate of the order date
with

order_lines as (

    select * from {{ ref('stg_crm__order_lines') }}
    {%- if is_incremental() %}
    where order_line_id in ({{ order_lines_to_refresh() }})
    {%- endif %}

),

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates__filled_daily') }}

),

joined as (

    select
        order_lines.order_line_id,
        order_lines.order_id,
        orders.customer_id,
        order_lines.product_id,
        orders.ordered_at,
        orders.ordered_date,
        orders.order_status,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.gross_amount,
        order_lines.discount_amount,
        order_lines.net_amount,
        orders.currency_code,
        fx_rates.reporting_currency,
        fx_rates.fx_rate_to_reporting,
        order_lines.is_deleted,
        orders.is_deleted as is_order_deleted
    from order_lines
    inner join orders
        on orders.order_id = order_lines.order_id
    left join fx_rates
        on fx_rates.currency_code = orders.currency_code
        and fx_rates.rate_date = orders.ordered_date

),

final as (

    select
        order_line_id,
        order_id,
        customer_id,
        product_id,
        ordered_at,
        ordered_date,
        order_status,
        quantity,
        unit_price,
        gross_amount,
        discount_amount,
        net_amount,
        currency_code,
        coalesce(reporting_currency, {{ reporting_currency() }}) as reporting_currency,
        fx_rate_to_reporting,
        {{ to_reporting('gross_amount', 'fx_rate_to_reporting') }} as gross_amount_reporting,
        {{ to_reporting('discount_amount', 'fx_rate_to_reporting') }} as discount_amount_reporting,
        {{ to_reporting('net_amount', 'fx_rate_to_reporting') }} as net_amount_reporting,
        is_deleted,
        is_order_deleted,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from joined

)

select * from final
