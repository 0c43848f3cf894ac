{#-
    The date a mart is computed as of: the dbt var as_of_date ('YYYY-MM-DD') when given, else the
    latest loaded day (pass the latest_loaded_date column of int_loaded_dates__summarized).
    Resolved in each mart and in the intermediate models the marts share (tag as_of: the revenue
    orders and refunds, revenue and activity periods per customer, the deal state), which the marts
    build (transform.MARTS) builds with them, so `dbt build -s <marts selection> --vars ...` applies
    the var without rebuilding the core; a row test of the marts reading them fails if the dates
    differ.
-#}
{% macro as_of_date(latest_loaded_date_column) -%}
    {%- set given = var('as_of_date', none) -%}
    {%- if given -%}
        {{ dbt.safe_cast("'" ~ given ~ "'", api.Column.translate_type('date')) }}
    {%- else -%}
        {{ latest_loaded_date_column }}
    {%- endif -%}
{%- endmacro %}
