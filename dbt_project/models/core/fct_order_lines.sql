-- incremental: a run recomputes the rows whose inputs changed in batches the model has not consumed
-- (macros/orders_incremental.sql); a full build recomputes everything
-- depends_on: {{ source('crm', 'orders') }}
-- depends_on: {{ source('crm', 'order_lines') }}
-- depends_on: {{ source('crm', 'fx_rates') }}
-- depends_on: {{ source('crm', 'products') }}
-- depends_on: {{ ref('stg_crm__order_lines') }}
-- depends_on: {{ ref('stg_crm__orders') }}
{{ incremental_by_key('order_line_id', extra_indexes=[{'columns': ['order_id']}]) }}

with

order_lines as (

    select * from {{ ref('int_order_lines__converted') }}
    {%- if is_incremental() %}
    where order_line_id in (
        {{ order_lines_to_refresh() }}
        {{ union_of_changed_products('order_line_id') }}
    )
    {%- endif %}

),

products as (

    select * from {{ ref('stg_crm__products') }}

),

usd_rates as (

    -- the reporting factor of USD, for the cost of goods (unit_cost_usd)
    select
        rate_date,
        fx_rate_to_reporting
    from {{ ref('int_fx_rates__filled_daily') }}
    where currency_code = 'USD'

),

final as (

    select
        order_lines.order_line_id,
        order_lines.order_id,
        order_lines.customer_id,
        order_lines.product_id,
        order_lines.ordered_at,
        order_lines.ordered_date,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.gross_amount,
        order_lines.discount_amount,
        order_lines.net_amount,
        order_lines.currency_code,
        order_lines.reporting_currency,
        order_lines.fx_rate_to_reporting,
        order_lines.gross_amount_reporting,
        order_lines.discount_amount_reporting,
        order_lines.net_amount_reporting,
        -- cost of goods: quantity x the product's (current) unit cost in USD, converted with the
        -- USD rate of the order date
        products.unit_cost_usd,
        order_lines.quantity * products.unit_cost_usd as cost_amount_usd,
        {{ to_reporting('order_lines.quantity * products.unit_cost_usd', 'usd_rates.fx_rate_to_reporting') }} as cost_amount_reporting,
        order_lines.order_status = 'cancelled' as is_order_cancelled,
        order_lines.is_order_deleted,
        order_lines.is_deleted,
        -- a line counts as revenue when neither it nor its order is deleted and the order is not cancelled
        not order_lines.is_deleted
            and not order_lines.is_order_deleted
            and order_lines.order_status <> 'cancelled' as is_revenue_line,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from order_lines
    left join products
        on products.product_id = order_lines.product_id
    left join usd_rates
        on usd_rates.rate_date = order_lines.ordered_date

)

select * from final
