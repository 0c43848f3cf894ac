{#-
    fails for every row where the sql boolean expression is not true.
    On a column the expression is appended to the column name (e.g. expression: ">= 0").
-#}
{% test expression_is_true(model, expression, column_name=none) %}

{%- set condition = (column_name ~ ' ' ~ expression) if column_name else expression -%}

with

final as (

    select *
    from {{ model }}
    where not coalesce(({{ condition }}), false)

)

select * from final

{% endtest %}
