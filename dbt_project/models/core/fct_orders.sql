-- incremental: a run recomputes the rows whose inputs changed in batches the model has not consumed
-- (macros/orders_incremental.sql); a full build recomputes everything
-- depends_on: {{ source('crm', 'orders') }}
-- depends_on: {{ source('crm', 'order_lines') }}
-- depends_on: {{ source('crm', 'fx_rates') }}
-- depends_on: {{ source('crm', 'products') }}
-- depends_on: {{ ref('stg_crm__order_lines') }}
{{ incremental_by_key('order_id', extra_indexes=[{'columns': ['ordered_date']}]) }}

with

orders as (

    select * from {{ ref('stg_crm__orders') }}
    {%- if is_incremental() %}
    where order_id in (
        {{ orders_to_refresh() }}
        {{ union_of_changed_products('order_id') }}
    )
    {%- endif %}

),

order_lines as (

    select * from {{ ref('int_order_lines__converted') }}
    {%- if is_incremental() %}
    where order_id in (select order_id from orders)
    {%- endif %}

),

line_costs as (

    -- cost of goods of the non-deleted lines, summed once here so the customer marts need not
    -- re-aggregate every order line on every run
    select
        order_id,
        sum(cost_amount_reporting) as cost_amount_reporting
    from {{ ref('fct_order_lines') }}
    where not is_deleted
    {%- if is_incremental() %}
      and order_id in (select order_id from orders)
    {%- endif %}
    group by order_id

),

fx_rates as (

    select * from {{ ref('int_fx_rates__filled_daily') }}

),

order_totals as (

    -- deleted lines do not count towards the order
    select
        order_id,
        count(*) as line_count,
        sum(quantity) as item_quantity,
        sum(gross_amount) as gross_amount,
        sum(discount_amount) as discount_amount,
        sum(net_amount) as net_amount,
        sum(gross_amount_reporting) as gross_amount_reporting,
        sum(discount_amount_reporting) as discount_amount_reporting,
        sum(net_amount_reporting) as net_amount_reporting
    from order_lines
    where not is_deleted
    group by order_id

),

final as (

    select
        orders.order_id,
        orders.order_number,
        orders.customer_id,
        orders.ordered_at,
        orders.ordered_date,
        orders.order_status,
        orders.sales_channel,
        coalesce(order_totals.line_count, 0) as line_count,
        coalesce(order_totals.item_quantity, 0) as item_quantity,
        orders.currency_code,
        coalesce(order_totals.gross_amount, 0) as gross_amount,
        coalesce(order_totals.discount_amount, 0) as discount_amount,
        coalesce(order_totals.net_amount, 0) as net_amount,
        {{ reporting_currency() }} as reporting_currency,
        fx_rates.fx_rate_to_reporting,
        -- an order without lines is worth 0, but stays null without an FX rate (caught by not_null tests)
        case
            when fx_rates.fx_rate_to_reporting is not null
                then coalesce(order_totals.gross_amount_reporting, 0)
        end as gross_amount_reporting,
        case
            when fx_rates.fx_rate_to_reporting is not null
                then coalesce(order_totals.discount_amount_reporting, 0)
        end as discount_amount_reporting,
        case
            when fx_rates.fx_rate_to_reporting is not null
                then coalesce(order_totals.net_amount_reporting, 0)
        end as net_amount_reporting,
        line_costs.cost_amount_reporting,
        orders.order_status = 'cancelled' as is_cancelled,
        orders.is_deleted,
        -- the revenue rule: an order counts when it is neither cancelled nor deleted
        orders.order_status <> 'cancelled' and not orders.is_deleted as is_revenue_order,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from orders
    left join order_totals
        on order_totals.order_id = orders.order_id
    left join line_costs
        on line_costs.order_id = orders.order_id
    left join fx_rates
        on fx_rates.currency_code = orders.currency_code
        and fx_rates.rate_date = orders.ordered_date

)

select * from final
