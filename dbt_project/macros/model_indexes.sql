{#-
    Post-hook of every incremental model: the indexes of its config that its table lacks. dbt creates a
    model's indexes only when it creates the table, so a table built before its model became incremental
    (or before an index was added to the config) would run every delete+insert without its unique key
    index and never get the _batch_cutoff_xid index the next run's cutoff reads. An index counts as
    present when one on the same columns, in the same order and of the same uniqueness, exists.
-#}
{% macro create_missing_indexes() -%}
    {%- set indexes = config.get('indexes', default=[]) -%}
    {%- if not execute or this is none or config.get('materialized') != 'incremental' or not indexes -%}
        {{ return('') }}
    {%- endif -%}
    {%- set relation = this.include(database=false) -%}
    do $indexes$
    begin
        {%- for index in indexes %}
        {%- set parsed = adapter.parse_index(index) %}
        if not {{ has_index(relation, parsed.columns, parsed.unique) }}
        then
            create {{ 'unique ' if parsed.unique }}index on {{ relation }}
                {{- ' using ' ~ parsed.type if parsed.type }} ({{ parsed.columns | join(', ') }});
        end if;
        {%- endfor %}
    end
    $indexes$
{%- endmacro %}


{#- a boolean SQL expression: the relation has an index on exactly these columns, in this order, unique or
    not as asked, on plain columns and without a predicate (with partial: with one); with nulls_equal, a unique
    index must also refuse two rows that differ only by nulls (nulls not distinct), unless its columns are
    NOT NULL -#}
{% macro has_index(relation, columns, unique, nulls_equal=false, partial=false) -%}
    exists (
        select from pg_index as i
        where i.indrelid = '{{ relation }}'::regclass
          and i.indisunique = {{ 'true' if unique else 'false' }} and i.indexprs is null
          and i.indpred is {{ 'not null' if partial else 'null' }}
          and array(select a.attname::text
                    from unnest(i.indkey::int2[]) with ordinality as k (attnum, position)
                    join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
                    order by k.position)
              = array[{% for column in columns %}{{ quoted_literal(column) }}{{ ', ' if not loop.last }}{% endfor %}]::text[]
          {%- if nulls_equal %}
          and (i.indnullsnotdistinct or not exists (
              select from pg_attribute as a
              where a.attrelid = i.indrelid and a.attnum = any (i.indkey::int2[]) and not a.attnotnull))
          {%- endif %}
    )
{%- endmacro %}
