{#-
    Incremental models consume raw_crm by load batch, exactly once and in any publish order.

    Every batch in ops.load_batches records the transaction that published it (published_xid). At
    the start of each dbt invocation, on-run-start records the invocation's cutoff: the xmin of a
    fresh snapshot, below which every transaction has finished, and each row a model writes carries
    it as _batch_cutoff_xid. Every batch published below it was visible to the whole invocation; a
    batch published at or above it may or may not have been. So the next run of a model reads the
    batches published at or above the highest cutoff it stored: a batch published late (a long load,
    a held batch released days later) has a newer xid and is still read, and one read twice changes
    nothing, because a model recomputes the changed keys from their whole history.
-#}

{% macro record_batch_cutoff() -%}
    create schema if not exists dbt_state;
    create table if not exists dbt_state.batch_cutoffs (
        invocation_id text primary key,
        cutoff_xid bigint not null,
        recorded_at timestamptz not null default clock_timestamp()
    );
    delete from dbt_state.batch_cutoffs where recorded_at < clock_timestamp() - interval '30 days';
    insert into dbt_state.batch_cutoffs (invocation_id, cutoff_xid)
    values ('{{ invocation_id }}', pg_snapshot_xmin(pg_current_snapshot())::text::bigint)
    on conflict (invocation_id) do nothing;
{%- endmacro %}


{#- the invocation's cutoff (scalar subquery) -#}
{% macro batch_cutoff() -%}
    (select cutoff_xid from dbt_state.batch_cutoffs where invocation_id = '{{ invocation_id }}')
{%- endmacro %}


{#-
    Ids of the batches of a CRM object this model has not consumed yet, read when the model runs
    (dbt compiles a node just before running it). Literal ids, not a subquery: the planner then
    knows the new batches are a sliver of raw (the initial batch dominates the column statistics)
    and reads them through the BRIN index on _batch_id instead of scanning the table.
    since: another cutoff to read from (an as-of model's recorded one, macros/as_of_incremental.sql).
-#}
{% macro new_batch_ids(object_name, since=none) -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        select batch_id
        from {{ source('ops', 'load_batches') }}
        where object_name = '{{ object_name }}'
            and status = 'published'
            and published_xid >= {{ previous_batch_cutoff() if since is none else since }}
        order by batch_id
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}


{#-
    The highest cutoff this model stored; 0 (read every batch, so the run rewrites every key once) when
    the table lacks a column the model has: a table built before the model was incremental (no
    _batch_cutoff_xid), or one built before a documented column was added (on_schema_change adds it, and
    without the rewrite the rows written before would keep it null).
-#}
{% macro previous_batch_cutoff() -%}
    {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- set missing = ['_batch_cutoff_xid'] + (model.columns.keys() | map('lower') | list) -%}
    {%- set missing = missing | reject('in', existing) | unique | list -%}
    {%- if not missing -%}
        (select coalesce(max(_batch_cutoff_xid), 0) from {{ this }})
    {%- else -%}
        {%- do log(this ~ " lacks " ~ missing | join(", ") ~ ": this run rewrites every key", info=true) -%}
        0
    {%- endif -%}
{%- endmacro %}


{#- the keys (key_column of raw_crm.<object_name>) that have a version in a new batch -#}
{% macro changed_keys(object_name, key_column) -%}
    {%- set batch_ids = new_batch_ids(object_name) -%}
    select {{ key_column }}
    from {{ source('crm', object_name) }}
    where _batch_id in ({{ batch_ids | join(', ') if batch_ids else 'null' }})
{%- endmacro %}


{#-
    The first day an incremental run of mart_pipeline_daily must rewrite: the day after the last one
    it holds, or the earliest day a change it has not consumed reaches back to, if earlier: a deal
    version's updated_at (its created_at for a deal seen for the first time), a stage change's
    changed_at, a new FX rate's date. none (rewrite every day) when the pipeline stages changed.
-#}
{% macro sales_pipeline_daily_start() -%}
    {%- if not execute or new_batch_ids('pipeline_stages') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set deal_batches = new_batch_ids('deals') -%}
    {%- set history_batches = new_batch_ids('deal_stage_history') -%}
    {%- set fx_from = fx_rates_changed_from() -%}
    {%- set query -%}
        select least(
            (select max(date_day) + 1 from {{ this }}),
            {%- if deal_batches %}
            (select min({{ utc_date('case when exists (select 1 from ' ~ source('crm', 'deals') ~ ' earlier where earlier.deal_id = d.deal_id and earlier._batch_id < d._batch_id) then d.updated_at else least(d.created_at, d.updated_at) end') }})
             from {{ source('crm', 'deals') }} as d where d._batch_id in ({{ deal_batches | join(', ') }})),
            {%- endif %}
            {%- if history_batches %}
            (select min({{ utc_date('least(h.changed_at, h.updated_at)') }})
             from {{ source('crm', 'deal_stage_history') }} as h where h._batch_id in ({{ history_batches | join(', ') }})),
            {%- endif %}
            {%- if fx_from %}
            cast('{{ fx_from }}' as date),
            {%- endif %}
            null::date
        )
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{%- endmacro %}


{#- the day a pipeline movement counts on: its own, or the first day an incremental run writes if earlier -#}
{%- macro pipeline_movement_day(day, start_day) -%}
    {%- if start_day -%}
        greatest({{ day }}, cast('{{ start_day }}' as date))
    {%- else -%}
        {{ day }}
    {%- endif -%}
{%- endmacro %}

{#-
    The config of an incremental model that replaces the rows of its changed keys (delete+insert on
    unique_key), with a unique index (on unique_columns, default the key) for the delete and for
    uniqueness across runs, and an index on _batch_cutoff_xid for the model's next run.
-#}
{% macro incremental_by_key(unique_key, unique_columns=none, extra_indexes=[]) -%}
    {%- set indexes = [{'columns': unique_columns or [unique_key], 'unique': true}] + extra_indexes
                      + [{'columns': ['_batch_cutoff_xid']}] -%}
    {{ config(materialized='incremental', unique_key=unique_key, incremental_strategy='delete+insert',
              indexes=indexes) }}
{%- endmacro %}
