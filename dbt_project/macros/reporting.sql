{#- the reporting currency as a quoted sql literal, from var reporting_currency -#}
{% macro reporting_currency() -%}
    '{{ var("reporting_currency", "USD") | upper | trim }}'
{%- endmacro %}

{#- an amount converted with a rate column (units of reporting currency per unit), rounded to cents -#}
{% macro to_reporting(amount, rate) -%}
    round(cast({{ amount }} * {{ rate }} as {{ dbt.type_numeric() }}), 2)
{%- endmacro %}

{#- a ratio that is null instead of failing when the denominator is 0 or null -#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as {{ dbt.type_numeric() }}) / nullif({{ denominator }}, 0))
{%- endmacro %}
