{#- text as a SQL string literal, its quotes doubled (dbt.string_literal does not escape them) -#}
{% macro quoted_literal(text) -%}
    {{ return("'" ~ (text | string | replace("'", "''")) ~ "'") }}
{%- endmacro %}
