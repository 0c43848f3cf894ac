with

order_lines as (

    select * from {{ ref('int_order_lines__converted') }}

),

final as (

    select
        order_line_id,
        order_id,
        customer_id,
        product_id,
        ordered_at,
        ordered_date,
        quantity,
        unit_price,
        gross_amount,
        discount_amount,
        net_amount,
        currency_code,
        reporting_currency,
        fx_rate_to_reporting,
        gross_amount_reporting,
        discount_amount_reporting,
        net_amount_reporting,
        order_status = 'cancelled' as is_order_cancelled,
        is_order_deleted,
        is_deleted,
        -- a line counts as revenue when neither it nor its order is deleted and the order is not cancelled
        not is_deleted and not is_order_deleted and order_status <> 'cancelled' as is_revenue_line
    from order_lines

)

select * from final
