{#-
    The as-of models (tag as_of: the revenue orders and refunds, revenue and activity periods per
    customer, the deal state) are incremental across as-of days. Each build records, in
    dbt_state.as_of_builds, the as-of date it computed, the invocation's batch cutoff and the vars its
    rows depend on. The next build, for a date D on or after the recorded date P and at most 31 days
    later (a longer step rewrites most keys anyway), with the same vars, rewrites only the keys whose
    state can differ between the end of P and the end of D:
      - keys whose upstream rows an invocation rewrote since the recorded cutoff (the incremental core
        models stamp every row they write with their own cutoff, which is at or above it), and
      - keys a date in (P, D] moves with no new batch: an order placed, a type-2 version starting or
        ending, a refund made, a churn date passing, a stage entered or left in that window.
    Any other build (the first, --full-refresh, an earlier date, a longer step, other vars, no record)
    rewrites every key: the pre-hook truncates the table and the model selects everything.
    The model's rows do not hold the as-of date (it changed every row every day): the record does.
-#}

{% macro create_as_of_state() -%}
    create schema if not exists dbt_state;
    create table if not exists dbt_state.as_of_builds (
        model_name text primary key,
        as_of_date date not null,
        cutoff_xid bigint not null,
        depends_on_vars text not null,
        built_at timestamptz not null default clock_timestamp()
    )
{%- endmacro %}


{#- the vars an as-of model's rows depend on besides the date: a change rewrites every key -#}
{% macro as_of_vars() -%}
    {{- tojson({'reporting_currency': var('reporting_currency'), 'churn_days': var('churn_days')}) -}}
{%- endmacro %}


{#-
    The config of an as-of model: appended rows (the pre-hook deletes the keys it rewrites, including
    keys with no row any more), the columns of the table synced with the model's, a unique index on
    unique_columns, and the build recorded in dbt_state.as_of_builds in the same transaction.
    changed_keys_macro names the macro selecting the keys to rewrite (macro as_of_changed_keys);
    rewritten_rows_macro, when given, names a macro whose condition selects further rows every windowed
    build rewrites, whatever their key (macro as_of_rewritten_rows).
-#}
{% macro as_of_incremental(key_column, changed_keys_macro, unique_columns=none, extra_indexes=[],
                           rewritten_rows_macro=none) -%}
    {%- set indexes = [{'columns': unique_columns or [key_column], 'unique': true}] + extra_indexes
                      + [{'columns': ['_batch_cutoff_xid']}] -%}
    {{ config(materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
              indexes=indexes, tags=['as_of'],
              pre_hook="{{ as_of_delete_changed('" ~ key_column ~ "', '" ~ changed_keys_macro ~ "', "
                       ~ ("'" ~ rewritten_rows_macro ~ "'" if rewritten_rows_macro else "none") ~ ") }}",
              post_hook="{{ record_as_of_build() }}") }}
{%- endmacro %}


{#-
    The window this build updates the table across: {'previous': P, 'current': D, 'cutoff': recorded
    cutoff}, or none when it rewrites every key (see the top of this file). Read when the model runs.
-#}
{% macro as_of_window() -%}
    {%- if not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {#- a command without the on-run-start hooks (dbt compile, docs generate) may come before the table -#}
    {%- if run_query("select to_regclass('dbt_state.as_of_builds') is null").rows[0][0] -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
        select
            builds.as_of_date,
            builds.cutoff_xid,
            builds.depends_on_vars,
            (select {{ as_of_date('latest_loaded_date') }} from {{ ref('int_loaded_dates__summarized') }}) as current_as_of
        from dbt_state.as_of_builds as builds
        where builds.model_name = '{{ this.identifier }}'
    {%- endset -%}
    {%- set rows = run_query(query).rows -%}
    {%- if not rows -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set previous, cutoff, vars_then, current = rows[0][0], rows[0][1], rows[0][2], rows[0][3] -%}
    {%- if current is none or current < previous or (current - previous).days > 31
          or vars_then != as_of_vars() -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return({'previous': previous, 'current': current, 'cutoff': cutoff}) }}
{%- endmacro %}


{#- a boolean SQL expression: the date column falls in the window's (previous, current] -#}
{% macro in_as_of_window(date_column, window) -%}
    ({{ date_column }} > '{{ window.previous }}' and {{ date_column }} <= '{{ window.current }}')
{%- endmacro %}


{#- the pre-hook: delete the keys this build rewrites (all of them without a window). Key sets are matched
    with = any(array(...)): the planner then reads them through the key's index, where `in (subquery)`,
    misestimated ~5x, had it merge-join the whole table -#}
{% macro as_of_delete_changed(key_column, changed_keys_macro, rewritten_rows_macro=none) -%}
    {%- if not execute or not is_incremental() -%}
        {{ return('') }}
    {%- endif -%}
    {%- set window = as_of_window() -%}
    {%- if window is none -%}
        {%- do log(this ~ ": no incremental window from its last build, rewriting every key", info=true) -%}
        {#- not delete: no dead copy of every row left behind; the table is dbt's own intermediate -#}
        truncate table {{ this }}
    {%- else -%}
        delete from {{ this }}
        where {{ key_column }} = any(array({{ as_of_changed_keys(changed_keys_macro, window) }}))
        {%- if rewritten_rows_macro %}
            or {{ as_of_rewritten_rows(rewritten_rows_macro, window) }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}


{#- the keys a windowed build rewrites, by the name given to macro as_of_incremental -#}
{% macro as_of_changed_keys(name, window) -%}
    {%- if name == 'revenue_orders_changed' -%}
        {{ revenue_orders_changed(window) }}
    {%- elif name == 'revenue_refunds_changed' -%}
        {{ revenue_refunds_changed(window) }}
    {%- elif name == 'revenue_customers_changed' -%}
        {{ revenue_customers_changed(window) }}
    {%- elif name == 'activity_customers_changed' -%}
        {{ activity_customers_changed(window) }}
    {%- elif name == 'deals_changed' -%}
        {{ deals_changed(window) }}
    {%- elif name == 'mrr_accounts_changed' -%}
        {{ mrr_accounts_changed(window) }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("as_of_changed_keys: no macro " ~ name) }}
    {%- endif -%}
{%- endmacro %}


{#- the condition on further rows a windowed build rewrites, by the name given to macro as_of_incremental -#}
{% macro as_of_rewritten_rows(name, window) -%}
    {%- if name == 'mrr_months_rewritten' -%}
        {{ mrr_months_rewritten(window) }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("as_of_rewritten_rows: no macro " ~ name) }}
    {%- endif -%}
{%- endmacro %}


{#- the post-hook: this build's date, cutoff and vars -#}
{% macro record_as_of_build() -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    insert into dbt_state.as_of_builds (model_name, as_of_date, cutoff_xid, depends_on_vars)
    select '{{ this.identifier }}', {{ as_of_date('latest_loaded_date') }}, {{ batch_cutoff() }}, '{{ as_of_vars() }}'
    from {{ ref('int_loaded_dates__summarized') }}
    on conflict (model_name) do update
        set as_of_date = excluded.as_of_date, cutoff_xid = excluded.cutoff_xid,
            depends_on_vars = excluded.depends_on_vars, built_at = clock_timestamp()
{%- endmacro %}


{#- order_ids whose revenue state can differ between the ends of window.previous and window.current. One
    branch per condition, so each reads its index (fct_orders and int_orders__historized index the dates) -#}
{% macro revenue_orders_changed(window) -%}
    select order_id from {{ ref('fct_orders') }} where _batch_cutoff_xid >= {{ window.cutoff }}
    union
    select order_id from {{ ref('fct_orders') }} where {{ in_as_of_window('ordered_date', window) }}
    union
    select order_id from {{ ref('int_orders__historized') }} where _batch_cutoff_xid >= {{ window.cutoff }}
    union
    select order_id from {{ ref('int_orders__historized') }} where {{ in_as_of_window('valid_from_date', window) }}
    union
    select order_id from {{ ref('int_orders__historized') }} where {{ in_as_of_window('valid_to_date', window) }}
{%- endmacro %}


{#- refund_ids whose revenue state can differ: the refund's own rows and dates, or its order's state -#}
{% macro revenue_refunds_changed(window) -%}
    select refund_id from {{ ref('fct_refunds') }}
    where _batch_cutoff_xid >= {{ window.cutoff }}
        or {{ in_as_of_window('refunded_date', window) }}
        or order_id in ({{ revenue_orders_changed(window) }})
    union
    select refund_id from {{ ref('int_refunds__historized') }}
    where _batch_cutoff_xid >= {{ window.cutoff }}
        or {{ in_as_of_window('valid_from_date', window) }}
        or {{ in_as_of_window('valid_to_date', window) }}
{%- endmacro %}


{#- customer_ids whose revenue can differ: every customer any version of a changed order (or of the order of
    any version of a changed refund) was of, so an order moved to another customer changes both -#}
{% macro revenue_customers_changed(window) -%}
    select customer_id from {{ source('crm', 'orders') }}
    where order_id = any(array(
        {{ revenue_orders_changed(window) }}
        union
        select order_id from {{ source('crm', 'refunds') }}
        where refund_id = any(array({{ revenue_refunds_changed(window) }}))
    ))
{%- endmacro %}


{#- customer_ids whose activity periods can differ: revenue changes (above), an order-rule period whose churn
    date (last order + churn_days) falls in the window, a subscription of the customer (any version) that
    changed or starts or ends in the window -#}
{% macro activity_customers_changed(window) -%}
    {{ revenue_customers_changed(window) }}
    union
    select customer_id from {{ ref('fct_orders') }}
    where ordered_date > cast('{{ window.previous }}' as date) - {{ var('churn_days') }}
        and ordered_date <= cast('{{ window.current }}' as date) - {{ var('churn_days') }}
    union
    select customer_id from {{ source('crm', 'subscriptions') }}
    where customer_id is not null and subscription_id in (
        select subscription_id from {{ ref('stg_crm__subscriptions') }}
        where _batch_cutoff_xid >= {{ window.cutoff }}
            or {{ in_as_of_window('started_date', window) }}
            or {{ in_as_of_window('ended_date', window) }}
    )
{%- endmacro %}


{#- deal_ids whose state can differ: the deal's or its stage visits' rows rewritten; created, deleted, or a
    stage entered or left in the window; every deal dated on or after the first day of an FX rate in a
    batch published since the window's cutoff; every deal when the pipeline stages (won / lost / win
    probability) had such a batch. The batches are looked up when the model runs, by macro new_batch_ids
    from the window's cutoff. -#}
{% macro deals_changed(window) -%}
    {%- set fx_from = fx_rates_changed_from(since=window.cutoff) -%}
    {%- set stages_changed = new_batch_ids('pipeline_stages', since=window.cutoff) -%}
    select deal_id from {{ ref('fct_deals') }}
    where _batch_cutoff_xid >= {{ window.cutoff }}
        or {{ in_as_of_window('created_date', window) }}
        or {{ in_as_of_window('deleted_date', window) }}
        {%- if fx_from is not none %}
        or created_date >= '{{ fx_from }}'
        {%- endif %}
        {%- if stages_changed %}
        or true
        {%- endif %}
    union
    select deal_id from {{ ref('fct_deal_stage_history') }} where _batch_cutoff_xid >= {{ window.cutoff }}
    union
    select deal_id from {{ ref('fct_deal_stage_history') }} where {{ in_as_of_window('entered_date', window) }}
    union
    select deal_id from {{ ref('fct_deal_stage_history') }} where {{ in_as_of_window('exited_date', window) }}
    {%- if fx_from is not none %}
    union
    select deal_id from {{ ref('fct_deal_stage_history') }} where entered_date >= '{{ fx_from }}'
    {%- endif %}
{%- endmacro %}


{#- account_ids whose MRR months can differ in months before the ones every windowed build rewrites: every
    account any version of a subscription was of, when the subscription changed since the cutoff (a term
    changed, ended, was deleted, or moved to another account, which changes both). Not the subscriptions
    whose rows fct_subscription_mrr_monthly rewrote: it rewrites every running one when a new month
    starts, when only the months every build rewrites change; and an FX change of earlier months is
    macro mrr_rewrite_from_month's -#}
{% macro mrr_accounts_changed(window) -%}
    select account_id from {{ source('crm', 'subscriptions') }}
    where account_id is not null and subscription_id = any(array(
        select subscription_id from {{ ref('stg_crm__subscriptions') }}
        where _batch_cutoff_xid >= {{ window.cutoff }}
    ))
{%- endmacro %}


{#- the first month whose MRR movements a windowed build rewrites for every account: the month running at
    window.previous (its snapshot day moves with the as-of date; later months are new). An FX batch with a
    rate before that month (a correction, or a currency's earlier first rate, which the months before it
    use) rewrites every month -#}
{% macro mrr_rewrite_from_month(window) -%}
    {%- set running = window.previous.replace(day=1) -%}
    {%- set fx_from = fx_rates_changed_from(since=window.cutoff) -%}
    {%- if fx_from is not none and fx_from < running -%}
        {{ return(var('calendar_start_date')) }}
    {%- endif -%}
    {{ return(running.isoformat()) }}
{%- endmacro %}


{% macro mrr_months_rewritten(window) -%}
    month_start_date >= cast('{{ mrr_rewrite_from_month(window) }}' as date)
{%- endmacro %}
