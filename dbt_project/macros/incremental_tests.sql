{#-
    Data tests of an incremental model check the rows its latest run wrote (those carrying the
    highest batch cutoff): on a full build that is every row, on an incremental run the changed rows
    only, also when the tests run later on their own (`dbt test`). Rows a run did not write were
    tested by the run that wrote them, and a key stays unique across runs because every incremental
    model replaces its keys (delete+insert) under a unique index.
    Overrides dbt's get_where_subquery, which wraps the relation a generic test reads.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if is_written_incrementally(relation) -%}
        {%- set run_rows = '_batch_cutoff_xid = ' ~ latest_batch_cutoff(relation) -%}
        {%- set where = '(' ~ where ~ ') and ' ~ run_rows if where else run_rows -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}


{#-
    The cutoff of the model's latest run, read when the test runs (dbt compiles a node just before it
    runs it), as a literal: with a subquery postgres estimates the filter at 1 / (distinct cutoffs) of
    the table (half of it after the first incremental run) and scans the table through another index;
    with the literal it reads the run's rows from the column statistics (the model's post-hook
    analyzes it) and uses the _batch_cutoff_xid index.
-#}
{% macro latest_batch_cutoff(relation) -%}
    {%- set subquery = '(select max(_batch_cutoff_xid) from ' ~ relation ~ ')' -%}
    {%- if not execute -%}
        {{ return(subquery) }}
    {%- endif -%}
    {%- set latest = run_query('select max(_batch_cutoff_xid) from ' ~ relation).columns[0].values()[0] -%}
    {{ return(subquery if latest is none else latest) }}
{%- endmacro %}


{#- true when the tested relation is an incremental model of this project -#}
{% macro is_written_incrementally(relation) -%}
    {%- if not execute or relation is string or relation.identifier is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- for node_id in model.depends_on.nodes if node_id.startswith('model.') -%}
        {%- set node = graph.nodes[node_id] -%}
        {%- if node.alias == relation.identifier and node.schema == relation.schema
              and node.config.materialized == 'incremental' -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}
