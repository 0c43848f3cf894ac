{#-
    Macros shared by the sales marts: the slices they group by and the percentiles they report. (The deal
    state as of the as-of date is the intermediate model int_deals__state_as_of.)
-#}

{#-
    The slices of the sales marts: 'all' (the whole funnel) always, then the dimensions listed in
    var sales_slice_dimensions (default: all four below), each a (dimension, dimension_value) pair:
      created_month   first day of the creation month, 'YYYY-MM-DD' (the creation cohort)
      source_channel  the deal's lead source / channel ('unknown' when missing)
      owner_user_id   the owning rep's user_id (join dim_sales_rep for names and teams)
      segment         the account's segment, else the customer's ('unknown' when missing)
    sales_slices() returns [(dimension, value expression over a deal)] of the listed dimensions, in
    their order ('all' is implicit).
-#}
{% macro sales_slices() -%}
    {%- set string_type = dbt.type_string() -%}
    {%- set known = {
        "created_month": "cast(created_month as " ~ string_type ~ ")",
        "source_channel": "coalesce(source_channel, 'unknown')",
        "owner_user_id": "coalesce(cast(owner_user_id as " ~ string_type ~ "), 'unknown')",
        "segment": "coalesce(segment, 'unknown')",
    } -%}
    {%- set slices = [] -%}
    {%- for name in var('sales_slice_dimensions', ['created_month', 'source_channel', 'owner_user_id', 'segment']) -%}
        {%- if name not in known -%}
            {{ exceptions.raise_compiler_error("var sales_slice_dimensions: unknown dimension '" ~ name ~ "'; use any of " ~ (known.keys() | list | join(', '))) }}
        {%- endif -%}
        {%- do slices.append((name, known[name])) -%}
    {%- endfor -%}
    {{ return(slices) }}
{%- endmacro %}


{#-
    The same slices without unpivoting the deals: a mart selects sales_slice_columns() (one column
    slice_<dimension> per deal), groups by sales_grouping_sets(its grain), and names each result
    row's slice with sales_slice_dimension() and sales_slice_value(). A deal is then aggregated once
    per slice by the grouping sets instead of being copied into one row per slice first.
    sales_slice_columns() emits each column after a comma: write it straight after the last column
    of the select list.
-#}
{% macro sales_slice_columns() -%}
    {%- for name, value in sales_slices() %},
        cast({{ value }} as {{ dbt.type_string() }}) as slice_{{ name }}
    {%- endfor %}
{%- endmacro %}

{% macro sales_grouping_sets(grain) -%}
    grouping sets (
        ({{ grain | join(', ') }})
    {%- for name, _ in sales_slices() %},
        ({{ (grain + ['slice_' ~ name]) | join(', ') }})
    {%- endfor %}
    )
{%- endmacro %}

{% macro sales_slice_dimension() -%}
    {{ sales_slice_case(as_name=true) }}
{%- endmacro %}

{% macro sales_slice_value() -%}
    {{ sales_slice_case(as_name=false) }}
{%- endmacro %}

{#- the name (as_name=true) or the value of the slice a grouping-sets row belongs to; 'all' for the set
    without a slice column -#}
{% macro sales_slice_case(as_name) -%}
    {%- set string_type = dbt.type_string() -%}
    {%- set slices = sales_slices() -%}
    {%- if slices -%}
    case
        {%- for name, _ in slices %}
        when grouping(slice_{{ name }}) = 0 then
            {{- " cast('" ~ name ~ "' as " ~ string_type ~ ")" if as_name else " slice_" ~ name }}
        {%- endfor %}
        else cast('all' as {{ string_type }})
    end
    {%- else -%}
    cast('all' as {{ string_type }})
    {%- endif -%}
{%- endmacro %}


{#- a percentile (0..1, continuous) of an expression as an aggregate; override per adapter if needed -#}
{% macro sales_percentile(expression, fraction) -%}
    {{ return(adapter.dispatch('sales_percentile', 'crm_warehouse')(expression, fraction)) }}
{%- endmacro %}

{% macro default__sales_percentile(expression, fraction) -%}
    percentile_cont({{ fraction }}) within group (order by {{ expression }})
{%- endmacro %}

{% macro bigquery__sales_percentile(expression, fraction) -%}
    approx_quantiles({{ expression }}, 100)[offset({{ (fraction * 100) | int }})]
{%- endmacro %}

{#- the value to take a sales_percentile of, made where the rows are built: postgres's percentile_cont
    takes double precision, and casting a numeric column there, once per row, instead of inside the
    aggregate, once per row and grouping set, saves about 0.1 s per 440k rows and 5 grouping sets -#}
{% macro sales_percentile_input(expression) -%}
    {{ return(adapter.dispatch('sales_percentile_input', 'crm_warehouse')(expression)) }}
{%- endmacro %}

{% macro default__sales_percentile_input(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro postgres__sales_percentile_input(expression) -%}
    cast({{ expression }} as {{ dbt.type_float() }})
{%- endmacro %}
