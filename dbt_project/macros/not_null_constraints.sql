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
    error) of one of its columns becomes a unique index of its table, created when the table has no
    single-column unique index on it (an incremental model has one on its key already). A duplicate then
    fails the model with postgres' "Key (column)=(value) is duplicated" and its previous table stays; the
    pipeline's builds leave the tests out (transform.CONSTRAINED_TESTS), `dbt test` still runs them.
-#}
{% macro enforce_unique_tests() -%}
    {%- if not execute or this is none or config.get('materialized') not in ('table', 'incremental') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set columns = unique_tested_columns(model.unique_id) -%}
    {%- if not columns -%}
        {{ return('') }}
    {%- endif -%}
    {%- set relation = this.include(database=false) -%}
    do $unique$
    begin
        {%- for column in columns %}
        if not {{ has_index(relation, [column], true) }}
        then
            create unique index on {{ relation }} ({{ adapter.quote(column) }});
        end if;
        {%- endfor %}
    end
    $unique$
{%- endmacro %}


{#- the columns of a model that carry a unique test of severity error -#}
{% macro unique_tested_columns(model_id) -%}
    {%- set columns = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' and node.get('attached_node') == model_id -%}
        {%- if (node.get('test_metadata') or {}).get('name') == 'unique' and (node.config.severity | lower) == 'error' -%}
            {%- if node.config.get('where') -%}
                {{ exceptions.raise_compiler_error("unique test " ~ node.name ~ " has a where config: a unique index cannot stand for it (macro enforce_unique_tests)") }}
            {%- endif -%}
            {%- do columns.append(node.column_name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(columns | unique | sort) }}
{%- endmacro %}
