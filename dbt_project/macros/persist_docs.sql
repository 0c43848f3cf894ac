{#-
    persist_docs (dbt_project.yml) as postgres comments, written only where they differ from the
    stored ones. dbt comments every incremental model and each of its columns again on every run:
    COMMENT takes a lock that waits for an autovacuum of the table to be cancelled (deadlock_timeout,
    1 s), and a one-day core run spent 2 of its 10 s waiting so (fct_orders, fct_order_lines).
    Reading the stored comments takes no lock on the table.
-#}

{% macro postgres__alter_relation_comment(relation, comment) -%}
    {%- set relation_type = 'materialized view' if relation.type == 'materialized_view' else relation.type -%}
    do $persist_docs$ begin
        if obj_description({{ persisted_regclass(relation) }}, 'pg_class') is distinct from {{ postgres_escape_comment(comment) }} then
            comment on {{ relation_type }} {{ relation }} is {{ postgres_escape_comment(comment) }};
        end if;
    end $persist_docs$;
{%- endmacro %}

{% macro postgres__alter_column_comment(relation, column_dict) -%}
    {%- set existing_columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    do $persist_docs$ begin
    {%- for column_name in column_dict if column_name in existing_columns %}
        {%- set comment = postgres_escape_comment(column_dict[column_name]['description']) %}
        if col_description({{ persisted_regclass(relation) }}, (
            select attnum from pg_attribute
            where attrelid = {{ persisted_regclass(relation) }} and attname = {{ quoted_literal(column_name) }}
        )) is distinct from {{ comment }} then
            comment on column {{ relation }}.{{ adapter.quote(column_name) if column_dict[column_name]['quote'] else column_name }} is {{ comment }};
        end if;
    {%- endfor %}
        null;
    end $persist_docs$;
{%- endmacro %}

{% macro persisted_regclass(relation) -%}
    {{ quoted_literal(relation.include(database=false) | string) }}::regclass
{%- endmacro %}
