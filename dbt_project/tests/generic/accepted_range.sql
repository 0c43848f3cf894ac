{#- fails for every non-null value outside [min_value, max_value] (bounds optional; exclusive when inclusive=false) -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}

{%- set lower_op = '>=' if inclusive else '>' -%}
{%- set upper_op = '<=' if inclusive else '<' -%}

with

final as (

    select {{ column_name }} as value_out_of_range
    from {{ model }}
    where {{ column_name }} is not null
      and not (
        1 = 1
        {%- if min_value is not none %} and {{ column_name }} {{ lower_op }} {{ min_value }}{% endif %}
        {%- if max_value is not none %} and {{ column_name }} {{ upper_op }} {{ max_value }}{% endif %}
      )

)

select * from final

{% endtest %}
