{#-
    The state of the pipeline as of the as-of date (macro as_of_date), shared by the sales marts.
    Emits CTE definitions (no leading `with`), to be followed by the mart's own CTEs:

      as_of              one row: as_of_date
      live_deals_as_of   deals created on or before the as-of date and not deleted by then
                         (deleted_date after the as-of date still counts: a run made on that date saw it)
      visits_as_of       the stage visits entered on or before the as-of date, of every deal (join
                         live_deals_as_of or deals_as_of to keep the live deals' visits: filtering
                         them here cost a join of every visit, while the deals are joined anyway);
                         a visit that ended after the as-of date is still open (exited_at and
                         duration_days are null). Only the columns the sales marts use, so that a
                         mart reading it several times keeps the materialized CTE in memory.
      deals_as_of        one row per live deal: the stage it was in at the end of the as-of date
                         (the last visit entered), furthest funnel step, won/lost/open flags, close
                         date, sales cycle and the amount in the reporting currency, converted at
                         the close date (closed deals) or the creation date (open deals)

    It is a macro, not an intermediate table, so `dbt build -s <marts> --vars '{as_of_date: ...}'`
    applies the var without rebuilding anything upstream (same reason as macro as_of_date).
-#}
{% macro sales_deal_state_as_of() -%}

as_of as (

    select {{ as_of_date('latest_loaded_date') }} as as_of_date
    from {{ ref('int_loaded_dates__summarized') }}

),

live_deals_as_of as (

    select
        deals.deal_id,
        deals.owner_user_id,
        deals.source_channel,
        deals.segment,
        deals.created_at,
        deals.created_date,
        deals.created_month,
        deals.deal_amount,
        deals.currency_code
    from {{ ref('fct_deals') }} as deals
    cross join as_of
    where deals.created_date <= as_of.as_of_date
      and (deals.deleted_date is null or deals.deleted_date > as_of.as_of_date)
      -- a deleted deal without a deletion date (should not happen) is never counted
      and not (deals.is_deleted and deals.deleted_date is null)

),

visits_as_of as (

    select
        visits.deal_id,
        visits.stage_id,
        visits.funnel_step,
        visits.is_closed_stage,
        visits.is_won_stage,
        visits.is_lost_stage,
        visits.skipped_stage_count,
        visits.is_reopen,
        visits.entered_at,
        case when visits.exited_date <= as_of.as_of_date then visits.exited_at end as exited_at,
        case when visits.exited_date <= as_of.as_of_date then visits.duration_days end as duration_days
    from {{ ref('fct_deal_stage_history') }} as visits
    cross join as_of
    where not visits.is_deleted
      and visits.entered_date <= as_of.as_of_date

),

deal_progress_as_of as (

    -- the deal's stage at the end of the as-of date is its last visit entered by then, which is
    -- the one visit still open then: in fct_deal_stage_history each visit of a deal ends when the
    -- next one is entered. Picking it in the same hash aggregate saves sorting every visit for a
    -- row_number window.
    select
        deal_id,
        count(*) as stage_visit_count,
        max(funnel_step) as furthest_funnel_step,
        sum(case when is_reopen then 1 else 0 end) as reopen_count,
        sum(skipped_stage_count) as skipped_stage_count,
        max(case when exited_at is null then stage_id end) as stage_id,
        max(case when exited_at is null then entered_at end) as stage_entered_at,
        max(case when exited_at is null and is_closed_stage then 1 else 0 end) = 1 as is_closed,
        max(case when exited_at is null and is_won_stage then 1 else 0 end) = 1 as is_won,
        max(case when exited_at is null and is_lost_stage then 1 else 0 end) = 1 as is_lost
    from visits_as_of
    group by deal_id

),

deals_as_of_dated as (

    select
        live_deals_as_of.*,
        deal_progress_as_of.stage_id,
        deal_progress_as_of.stage_entered_at,
        coalesce(deal_progress_as_of.stage_visit_count, 0) as stage_visit_count,
        deal_progress_as_of.furthest_funnel_step,
        coalesce(deal_progress_as_of.reopen_count, 0) as reopen_count,
        coalesce(deal_progress_as_of.skipped_stage_count, 0) as skipped_stage_count,
        coalesce(deal_progress_as_of.is_closed, false) as is_closed,
        coalesce(deal_progress_as_of.is_won, false) as is_won,
        coalesce(deal_progress_as_of.is_lost, false) as is_lost,
        case when deal_progress_as_of.is_closed then {{ utc_date('deal_progress_as_of.stage_entered_at') }} end as closed_date
    from live_deals_as_of
    left join deal_progress_as_of
        on deal_progress_as_of.deal_id = live_deals_as_of.deal_id

),

deals_as_of as (

    select
        deals_as_of_dated.*,
        not deals_as_of_dated.is_closed as is_open,
        {{ dbt.datediff('deals_as_of_dated.created_date', 'deals_as_of_dated.closed_date', 'day') }} as sales_cycle_days,
        stages.win_probability as stage_win_probability,
        {{ to_reporting('deals_as_of_dated.deal_amount', 'fx_rates.fx_rate_to_reporting') }} as deal_amount_reporting
    from deals_as_of_dated
    left join {{ ref('dim_deal_stage') }} as stages
        on stages.stage_id = deals_as_of_dated.stage_id
    left join {{ ref('int_fx_rates__filled_daily') }} as fx_rates
        on fx_rates.currency_code = deals_as_of_dated.currency_code
        and fx_rates.rate_date = coalesce(deals_as_of_dated.closed_date, deals_as_of_dated.created_date)

)

{%- endmacro %}


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
