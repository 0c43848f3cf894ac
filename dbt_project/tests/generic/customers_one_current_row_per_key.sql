{#- fails for every key of a type-2 model that does not have exactly one current row (is_current) -#}
{% test customers_one_current_row_per_key(model, key_column) %}

with

current_rows as (

    select
        {{ key_column }},
        count(case when is_current then 1 end) as current_row_count
    from {{ model }}
    group by {{ key_column }}

),

final as (

    select * from current_rows
    where current_row_count <> 1

)

select * from final

{% endtest %}
