{#-
    Post-hook of every table and incremental model: planner statistics for the models and tests that
    read it next in the same run (autovacuum gets to a fresh table too late for them; without
    statistics postgres misestimates joins, and may spend seconds JIT-compiling a tiny query).
    A table built in full is analyzed every time, and so is an incremental table when the run wrote
    more than a tenth of it (autovacuum's rule) or it was never analyzed (first build, full refresh).
    Otherwise only _batch_cutoff_xid is analyzed (0.2 s instead of 0.4 s on a 2.4 M-row table), enough
    for the planner to know how many rows the run wrote. That is what the tests of the run's rows filter
    on (macro get_where_subquery); estimated at one row, a relationships test picks a nested loop over a
    sequential scan of the parent (measured: 137 s instead of 0.1 s). The column keeps the default
    sample of 30,000 rows: a 3,000-row sample (15 ms) misses a run that wrote 0.2% of a table about
    once in 150 runs, and one such miss can cost more than all the sampling saves.
-#}
{% macro analyze_when_stale() -%}
    {%- if this is none -%}
        {{ return('') }}
    {%- endif -%}
    {%- set materialized = config.get('materialized') -%}
    {%- set relation = this.include(database=false) -%}
    {%- if materialized == 'table' -%}
        analyze {{ relation }}
    {%- elif materialized == 'incremental' -%}
        do $analyze$
        begin
            if (select count(*) from {{ relation }} where _batch_cutoff_xid = {{ batch_cutoff() }})
               > 0.1 * greatest((select reltuples from pg_class where oid = '{{ relation }}'::regclass), 0)
            then
                analyze {{ relation }};
            else
                analyze {{ relation }} (_batch_cutoff_xid);
            end if;
        end
        $analyze$
    {%- endif -%}
{%- endmacro %}
