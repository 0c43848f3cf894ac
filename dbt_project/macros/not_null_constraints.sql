{#-
    Post-hook of every table and incremental model: the not_null tests declared on its columns become
    NOT NULL constraints of its table, so postgres refuses a null when a row is written, in every run,
    without reading the table again. The pipeline's builds then leave those tests out (transform.build):
    each was a dbt node (~40 ms of dbt's own time, 230 of them in the core build, 67 in the marts) that
    re-read the rows. `dbt test` and `make test` still run them. Views keep their tests (no constraints),
    and a table built before this hook gets its constraints on its next run (checked against its rows).
-#}
{% macro enforce_not_null_tests() -%}
    {%- if not execute or this is none or config.get('materialized') not in ('table', 'incremental') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set columns = not_null_tested_columns(model.unique_id) -%}
    {%- if not columns -%}
        {{ return('') }}
    {%- endif -%}
    {%- set relation = this.include(database=false) -%}
    do $not_null$
    begin
        if exists (select from pg_attribute
                   where attrelid = '{{ relation }}'::regclass and not attnotnull
                     and attname in ({% for column in columns %}'{{ column }}'{{ ', ' if not loop.last }}{% endfor %}))
        then
            alter table {{ relation }}
            {%- for column in columns %}
                alter column {{ adapter.quote(column) }} set not null{{ ',' if not loop.last }}
            {%- endfor %};
        end if;
    end
    $not_null$
{%- endmacro %}


{#- the columns of a model that carry a not_null test -#}
{% macro not_null_tested_columns(model_id) -%}
    {%- set columns = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' and node.get('attached_node') == model_id -%}
        {%- if (node.get('test_metadata') or {}).get('name') == 'not_null' -%}
            {%- do columns.append(node.column_name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(columns | sort) }}
{%- endmacro %}


{#-
    Post-hook of every table and incremental model, beside enforce_not_null_tests: a unique test (severity
    error) of one of its columns, or a unique_combination_of_columns test of several, becomes a unique index
    of its table, created when the table has none on those columns (an incremental model has one on its key
    already). Nulls count as the tests count them: a unique test ignores them (a plain unique index), a
    combination's group by makes them equal (nulls not distinct; an index without that will do when the
    columns are NOT NULL). A test's where config makes a partial index on its predicate (any partial unique
    index on the same columns counts as it: only this macro makes them). A duplicate then fails the model
    with postgres' "Key (...)=(...) is duplicated" and its previous table stays; the pipeline's builds leave
    the tests out (transform.CONSTRAINED_TESTS), `dbt test` still runs them.
-#}
{% macro enforce_unique_tests() -%}
    {%- if not execute or this is none or config.get('materialized') not in ('table', 'incremental') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set keys = unique_tested_keys(model.unique_id) -%}
    {%- if not keys -%}
        {{ return('') }}
    {%- endif -%}
    {%- set relation = this.include(database=false) -%}
    do $unique$
    begin
        {%- for key in keys %}
        {%- set columns -%}
            ({% for column in key.columns %}{{ adapter.quote(column) }}{{ ', ' if not loop.last }}{% endfor %})
            {{- ' nulls not distinct' if key.nulls_equal }}
        {%- endset %}
        if not {{ has_index(relation, key.columns, true, nulls_equal=key.nulls_equal, partial=key.where) }}
        then
            create unique index on {{ relation }} {{ columns }}{{ ' where ' ~ key.where if key.where }};
        end if;
        {%- endfor %}
    end
    $unique$
{%- endmacro %}


{#-
    The keys of a model's unique tests of severity error: {columns, nulls_equal, where} for each unique test
    (one column, nulls ignored) and each unique_combination_of_columns test (its columns in order, nulls
    equal), with the test's where config
-#}
{% macro unique_tested_keys(model_id) -%}
    {%- set keys = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' and node.get('attached_node') == model_id -%}
        {%- set test = node.get('test_metadata') or {} -%}
        {%- if test.get('name') in ('unique', 'unique_combination_of_columns') and (node.config.severity | lower) == 'error' -%}
            {%- if test.name == 'unique' -%}
                {%- set key = {'columns': [node.column_name], 'nulls_equal': false} -%}
            {%- else -%}
                {%- set key = {'columns': test.kwargs.combination_of_columns, 'nulls_equal': true} -%}
            {%- endif -%}
            {%- do key.update({'where': node.config.get('where')}) -%}
            {%- if key not in keys -%}
                {%- do keys.append(key) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(keys | sort(attribute='columns')) }}
{%- endmacro %}
