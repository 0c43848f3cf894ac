{#-
    Post-hook of every table and incremental model: its row-level data tests (accepted_range,
    accepted_values, expression_is_true of severity error) checked in one read of the rows, inside the
    model's transaction. A failing check raises with the test's name, its rule and sample rows, so the
    model fails and its previous table stays (a failing dbt test would leave the new table in place).
    The pipeline's builds then leave those tests out (transform.CONSTRAINED_TESTS): each was a dbt node
    of its own (~40 ms of dbt's time plus a read of the table; 107 in the marts build, ~60 in the
    core's), where one query per model now checks them all. An incremental model checks the rows its
    run wrote, as its dbt tests do (macro get_where_subquery). `dbt test` and `make test` still run
    the tests themselves.
-#}
{% macro assert_row_tests() -%}
    {%- if not execute or this is none or config.get('materialized') not in ('table', 'incremental') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set checks = row_test_checks(model.unique_id) -%}
    {%- if not checks -%}
        {{ return('') }}
    {%- endif -%}
    {%- set relation = this.include(database=false) -%}
    {%- set incremental = config.get('materialized') == 'incremental' -%}
    {%- set run_rows = ' where ' ~ ('tested._batch_cutoff_xid = run_cutoff' if incremental else 'true') -%}
    do $row_tests$
    #variable_conflict use_column
    declare
        run_cutoff bigint := {{ batch_cutoff() if incremental else 'null' }};
        failed_checks boolean[];
        failures text[] := '{}';
        failing_rows bigint;
        sample_rows text;
    begin
        select array[
            {%- for check in checks %}
            coalesce(bool_or(not ({{ check.passes }})), false){{ ',' if not loop.last }}
            {%- endfor %}
        ]
        into failed_checks
        from {{ relation }} as tested{{ run_rows }};
        {%- for check in checks %}
        if failed_checks[{{ loop.index }}] then
            select count(*) into failing_rows from {{ relation }} as tested{{ run_rows }}
                and not ({{ check.passes }});
            select string_agg(row_text, '; ') into sample_rows from (
                select left(tested::text, 300) as row_text from {{ relation }} as tested{{ run_rows }}
                    and not ({{ check.passes }}) limit 3
            ) as samples;
            failures := failures || format('%s (%s): %s rows, e.g. %s', {{ quoted_literal(check.name) }},
                                           {{ quoted_literal(check.rule) }}, failing_rows, sample_rows);
        end if;
        {%- endfor %}
        if cardinality(failures) > 0 then
            raise exception '% failed % data test(s) on the rows it wrote: %', '{{ relation }}',
                cardinality(failures), array_to_string(failures, ' | ');
        end if;
    end
    $row_tests$
{%- endmacro %}


{#-
    The row-level data tests of a model the post-hook checks: [{name, rule, passes}], `passes` a boolean
    expression over a row (alias `tested`) that is never null and true exactly when the test would not
    return the row: nulls pass accepted_range and accepted_values and fail expression_is_true, and a
    test's `where` config limits it to the rows the condition holds for. transform.CONSTRAINED_TESTS
    and transform.is_left_out select the same tests.
-#}
{% macro row_test_checks(model_id) -%}
    {%- set checks = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' and node.get('attached_node') == model_id -%}
        {%- set test = node.get('test_metadata') or {} -%}
        {%- if test.get('name') in ('accepted_range', 'accepted_values', 'expression_is_true')
              and (node.config.severity | lower) == 'error' -%}
            {%- set kwargs = test.get('kwargs') or {} -%}
            {%- set column = kwargs.get('column_name') or node.get('column_name') -%}
            {%- if test.name == 'accepted_range' -%}
                {%- set bounds = [] -%}
                {%- if kwargs.get('min_value') is not none -%}
                    {%- do bounds.append(column ~ (' >= ' if kwargs.get('inclusive', true) else ' > ') ~ kwargs.min_value) -%}
                {%- endif -%}
                {%- if kwargs.get('max_value') is not none -%}
                    {%- do bounds.append(column ~ (' <= ' if kwargs.get('inclusive', true) else ' < ') ~ kwargs.max_value) -%}
                {%- endif -%}
                {%- set rule = bounds | join(' and ') or 'true' -%}
                {%- set passes = column ~ ' is null or (' ~ rule ~ ')' -%}
            {%- elif test.name == 'accepted_values' -%}
                {%- set values = [] -%}
                {%- for value in kwargs['values'] -%}
                    {%- do values.append(quoted_literal(value) if kwargs.get('quote', true) else value) -%}
                {%- endfor -%}
                {%- set rule = column ~ ' in (' ~ values | join(', ') ~ ')' -%}
                {%- set passes = column ~ ' is null or ' ~ rule -%}
            {%- else -%}
                {%- set rule = row_test_refs((column ~ ' ' ~ kwargs.expression) if column else kwargs.expression) -%}
                {%- set passes = 'coalesce((' ~ rule ~ '), false)' -%}
            {%- endif -%}
            {%- if node.config.get('where') -%}
                {%- set rule = rule ~ ' where ' ~ node.config.where -%}
                {%- set passes = 'not coalesce((' ~ node.config.where ~ '), false) or (' ~ passes ~ ')' -%}
            {%- endif -%}
            {%- if '{{' in passes or '{%' in passes -%}
                {{ exceptions.raise_compiler_error("data test " ~ node.name ~ " of " ~ model_id ~ ": its arguments hold Jinja the row checks (macro assert_row_tests) cannot render: use a ref() only, or a singular test") }}
            {%- endif -%}
            {%- do checks.append({'name': node.name, 'rule': rule, 'passes': passes}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(checks | sort(attribute='name')) }}
{%- endmacro %}


{#- an expression with its {{ ref('model') }} calls resolved to the models' relations (the test node renders
    them when it compiles; a hook only sees the raw argument) -#}
{% macro row_test_refs(expression) -%}
    {%- set pattern = "\\{\\{\\s*ref\\(\\s*['\"]([A-Za-z0-9_]+)['\"]\\s*\\)\\s*\\}\\}" -%}
    {%- set resolved = namespace(text=expression) -%}
    {%- for name in modules.re.findall(pattern, expression) -%}
        {%- set matches = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
                          | selectattr('name', 'equalto', name) | list -%}
        {%- if matches -%}
            {%- set target = api.Relation.create(schema=matches[0].schema, identifier=matches[0].alias) -%}
            {%- set one = "\\{\\{\\s*ref\\(\\s*['\"]" ~ name ~ "['\"]\\s*\\)\\s*\\}\\}" -%}
            {%- set resolved.text = modules.re.sub(one, target | string, resolved.text) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(resolved.text) }}
{%- endmacro %}
