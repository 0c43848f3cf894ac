{#-
    Shared CTE bodies of the customer marts. Each takes the name of the mart's as_of CTE (one row,
    column as_of_date) so the var is resolved in the mart itself.
-#}

{#- fct_refunds rows that reduced revenue at the end of the as-of day: refunded on or before it, not
    deleted on that day, and of an order in the given revenue-orders CTE. Built once per run as
    int_refunds__revenue_as_of, which the customer models read -#}
{% macro customers_revenue_refunds(as_of, revenue_orders) -%}
    select refunds.*
    from {{ ref('fct_refunds') }} as refunds
    cross join {{ as_of }} as as_of_day
    inner join {{ ref('int_refunds__historized') }} as refund_states
        on refund_states.refund_id = refunds.refund_id
        and {{ customers_is_valid_on('refund_states', 'as_of_day.as_of_date') }}
    inner join {{ revenue_orders }} as refunded_orders
        on refunded_orders.order_id = refunds.order_id
    where not refund_states.is_deleted
      and refunds.refunded_date <= as_of_day.as_of_date
{%- endmacro %}

{#- dim_customer rows valid at the end of the as-of day: customers the CRM knew then, with the
    segment, owner, status, country and soft delete they had then -#}
{% macro customers_as_of(as_of) -%}
    select customers.*
    from {{ ref('dim_customer') }} as customers
    cross join {{ as_of }} as as_of_day
    where {{ customers_is_valid_on('customers', 'as_of_day.as_of_date') }}
{%- endmacro %}
