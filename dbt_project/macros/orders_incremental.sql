{#-
    What an incremental run of the order models must recompute. An order line's converted amounts
    depend on the line, its order (customer, date, status, currency, soft delete) and the FX rate of
    the order's currency on the order date; an order's totals depend on the order and its lines.
    A new FX rate for day D can change the forward-filled rates of D and later days
    (int_fx_rates__filled_daily), so every order from D on is recomputed.
-#}

{#- the first rate_date of an FX rate version in a batch this model has not consumed (or published since the
    cutoff `since`, macro new_batch_ids), or none -#}
{% macro fx_rates_changed_from(since=none) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set batch_ids = new_batch_ids('fx_rates', since) -%}
    {%- if not batch_ids -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
        select min(rate_date) from {{ source('crm', 'fx_rates') }} where _batch_id in ({{ batch_ids | join(', ') }})
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{%- endmacro %}


{#- order_ids whose order, lines or FX rates changed in batches this model has not consumed -#}
{% macro orders_to_refresh() -%}
    {%- set fx_from = fx_rates_changed_from() -%}
    {{ changed_keys('orders', 'order_id') }}
    union
    -- every order a changed line is in or was in: a line moved to another order changes both totals
    select order_id from {{ source('crm', 'order_lines') }}
    where order_line_id in ({{ changed_keys('order_lines', 'order_line_id') }})
    {%- if fx_from %}
    union
    select order_id from {{ ref('stg_crm__orders') }} where ordered_date >= '{{ fx_from }}'
    {%- endif %}
{%- endmacro %}


{#- order_line_ids whose line, order or FX rates changed in batches this model has not consumed -#}
{% macro order_lines_to_refresh() -%}
    {{ changed_keys('order_lines', 'order_line_id') }}
    union
    select order_line_id
    from {{ ref('stg_crm__order_lines') }}
    where order_id in ({{ orders_to_refresh() }})
{%- endmacro %}


{#- `union` the key_column (order_line_id or order_id) of the lines of products changed in batches this
    model has not consumed, or nothing: the cost of goods uses the product's latest unit cost -#}
{% macro union_of_changed_products(key_column) -%}
    {%- if new_batch_ids('products') %}
    union
    select {{ key_column }} from {{ ref('stg_crm__order_lines') }}
    where product_id in ({{ changed_keys('products', 'product_id') }})
    {%- endif %}
{%- endmacro %}
