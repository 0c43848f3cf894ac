{#-
    A shared CTE body of the customer marts. It takes the name of the mart's as_of CTE (one row,
    column as_of_date) so the var is resolved in the mart itself.
-#}

{#- dim_customer rows valid at the end of the as-of day: customers the CRM knew then, with the
    segment, owner, status, country and soft delete they had then -#}
{% macro customers_as_of(as_of) -%}
    select customers.*
    from {{ ref('dim_customer') }} as customers
    cross join {{ as_of }} as as_of_day
    where {{ customers_is_valid_on('customers', 'as_of_day.as_of_date') }}
{%- endmacro %}
