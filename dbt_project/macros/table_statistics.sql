{#-
    Post-hook of every table and incremental model: planner statistics for the models and tests that
    read it next in the same run (autovacuum gets to a fresh table too late for them; without
    statistics postgres misestimates joins, and may spend seconds JIT-compiling a tiny query).
    A table built in full is analyzed every time, and so is an incremental table when the run wrote
    more than a tenth of it (autovacuum's rule) or it was never analyzed (first build, full refresh).
    Otherwise the planner only needs to know how many rows the run wrote: that is what the tests of the
    run's rows filter on (macro get_where_subquery), and estimated at one row a relationships test picks
    a nested loop over a sequential scan of the parent (measured: 137 s instead of 0.1 s). Sampling it
    (`analyze t (_batch_cutoff_xid)`) reads its 30,000-row sample from as many pages: 40% of a 3.4 M-row
    table, 1.4 s, ~10 s of each one-day core build in all. The run's rows are counted instead, through
    the column's index, and written into the column's statistics as its most common value with its
    exact frequency (pg_restore_attribute_stats, postgres 18; older servers sample the column).
    A table built in full is sampled at var table_statistics_target (dbt_project.yml) instead of the server's
    default_statistics_target (100: a 30,000-row sample, MCV lists and histograms of up to 100 entries): the
    marts of ~100-260 k rows and 14-33 columns took 0.1-0.43 s each to analyze at 100 against a fifth of that at
    30 (9,000 rows, 30 entries), ~1 s of a day's marts build at scale 10 (the statistics of every column are
    computed from the sample, which is sorted once per column). null keeps the server's setting.
    A table built in full also opts out of autovacuum: it has no dead rows and its statistics are
    written here, so autovacuum would only re-read the fresh table in the background, competing for
    the cores with the rest of the run, and the next run's rename or drop of it waited up to 1 s
    (deadlock_timeout) for that vacuum to be cancelled. Wraparound vacuums still run (the table is
    replaced every run long before it needs one).
-#}
{% macro analyze_when_stale() -%}
    {%- if this is none -%}
        {{ return('') }}
    {%- endif -%}
    {%- set materialized = config.get('materialized') -%}
    {%- set relation = this.include(database=false) -%}
    {%- if materialized == 'table' -%}
        {%- set target = var('table_statistics_target', none) -%}
        alter table {{ relation }} set (autovacuum_enabled = false, toast.autovacuum_enabled = false);
        {%- if target is not none %}
        set local default_statistics_target = {{ target | int }};
        {%- endif %}
        analyze {{ relation }}
        {%- if target is not none -%}
        ;
        reset default_statistics_target
        {%- endif %}
    {%- elif materialized == 'incremental' -%}
        do $analyze$
        declare
            cutoff bigint := {{ batch_cutoff() }};
            run_rows bigint := (select count(*) from {{ relation }} where _batch_cutoff_xid = cutoff);
            table_rows float8;
            run_share float8;
            old record;
            new_vals bigint[];
            new_freqs real[];
        begin
            -- rows now: the last analyze's density times the table's current pages
            select case when c.reltuples <= 0 or c.relpages = 0 then c.reltuples
                        else c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::int)
                   end
            into table_rows
            from pg_class as c where c.oid = '{{ relation }}'::regclass;
            if table_rows <= 0 or run_rows > 0.1 * table_rows then
                analyze {{ relation }};
                return;
            end if;
            select s.most_common_vals::text::bigint[] as vals, s.most_common_freqs as freqs, s.n_distinct
            into old
            from pg_stats as s
            where s.schemaname = '{{ this.schema }}' and s.tablename = '{{ this.identifier }}'
                and s.attname = '_batch_cutoff_xid' and not s.inherited;
            if current_setting('server_version_num')::int < 180000 or old is null then
                analyze {{ relation }} (_batch_cutoff_xid);
                return;
            end if;
            -- the run's cutoff with its share of the rows; the other runs' shares shrink by as much
            run_share := run_rows / greatest(table_rows, run_rows);
            select array_agg(v order by f desc), array_agg(f order by f desc)
            into new_vals, new_freqs
            from (
                select v, f from (
                    select cutoff as v, run_share::real as f
                    union all
                    select o.v, (o.f * (1 - run_share))::real
                    from unnest(coalesce(old.vals, '{}'), coalesce(old.freqs, '{}')) as o (v, f)
                    where o.v <> cutoff
                ) as shares
                order by f desc
                limit 100
            ) as kept;
            perform pg_restore_attribute_stats(
                'schemaname', '{{ this.schema }}'::text, 'relname', '{{ this.identifier }}'::text,
                'attname', '_batch_cutoff_xid'::text, 'inherited', false,
                'most_common_vals', new_vals::text, 'most_common_freqs', new_freqs,
                'n_distinct', (case when old.n_distinct > 0 then greatest(old.n_distinct, cardinality(new_vals))
                                    else old.n_distinct end)::real);
        end
        $analyze$
    {%- endif -%}
{%- endmacro %}
