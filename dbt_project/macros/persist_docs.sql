{#-
    persist_docs (dbt_project.yml) as postgres comments, written only where they differ from the
    stored ones, in one statement per model. dbt comments every incremental model and each of its
    columns again on every run: COMMENT takes a lock that waits for an autovacuum of the table to be
    cancelled (deadlock_timeout, 1 s), and a one-day core run spent 2 of its 10 s waiting so (fct_orders,
    fct_order_lines). Reading the stored comments takes no lock on the table. dbt's own persist_docs
    also reads the table's columns twice and sends the relation's and the columns' comments apart: four
    round trips a model, where the catalog lookups below need none.
-#}
{% macro postgres__persist_docs(relation, model, for_relation, for_columns) -%}
    {%- set regclass = persisted_regclass(relation) -%}
    {%- set changes = [] -%}
    {%- if for_relation and config.persist_relation_docs() and model.description -%}
        {%- set relation_type = 'materialized view' if relation.type == 'materialized_view' else relation.type -%}
        {%- set comment = postgres_escape_comment(model.description) -%}
        {%- do changes.append(
            'if obj_description(' ~ regclass ~ ", 'pg_class') is distinct from " ~ comment ~ ' then\n'
            ~ '    comment on ' ~ relation_type ~ ' ' ~ relation ~ ' is ' ~ comment ~ ';\nend if;') -%}
    {%- endif -%}
    {%- if for_columns and config.persist_column_docs() and model.columns -%}
        {%- for column_name, column in model.columns.items() -%}
            {%- set comment = postgres_escape_comment(column['description']) -%}
            {%- set attnum = '(select attnum from pg_attribute where attrelid = ' ~ regclass
                             ~ ' and attname = ' ~ quoted_literal(column_name) ~ ' and not attisdropped)' -%}
            {#- a documented column the table lacks is left alone, as dbt does -#}
            {%- do changes.append(
                'if ' ~ attnum ~ ' is not null and col_description(' ~ regclass ~ ', ' ~ attnum ~ ') is distinct from '
                ~ comment ~ ' then\n    comment on column ' ~ relation ~ '.'
                ~ (adapter.quote(column_name) if column['quote'] else column_name) ~ ' is ' ~ comment ~ ';\nend if;') -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if changes -%}
        {%- do run_query('do $persist_docs$ begin\n' ~ changes | join('\n') ~ '\nend $persist_docs$') -%}
    {%- endif -%}
{%- endmacro %}

{% macro persisted_regclass(relation) -%}
    {{ quoted_literal(relation.include(database=false) | string) }}::regclass
{%- endmacro %}
