{#-
    The calendar date of a timestamptz in UTC. A plain cast would use the session time zone,
    which makes every *_date column depend on the server's settings.
-#}
{% macro utc_date(column) -%}
    {{ return(adapter.dispatch('utc_date', 'crm_warehouse')(column)) }}
{%- endmacro %}

{% macro default__utc_date(column) -%}
    cast({{ column }} as date)
{%- endmacro %}

{% macro postgres__utc_date(column) -%}
    cast(({{ column }} at time zone 'UTC') as date)
{%- endmacro %}
