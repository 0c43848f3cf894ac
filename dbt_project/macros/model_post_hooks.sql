{#-
    The post-hook of every model (dbt_project.yml): the checks and upkeep below, in this order, sent as
    one statement. dbt sends each post-hook as a statement of its own, each a round trip with two debug
    log events; five of them on each of ~40 models of a one-day core build cost more dbt time than the
    work they do.
      create_missing_indexes  the configured indexes an incremental model's table lacks
      enforce_not_null_tests  not_null tests as NOT NULL constraints
      enforce_unique_tests    unique tests as unique indexes
      analyze_when_stale      planner statistics for the models and tests that read the table next
      assert_row_tests        the row-level tests, checked in one query
-#}
{% macro model_post_hooks() -%}
    {%- set parts = [create_missing_indexes(), enforce_not_null_tests(), enforce_unique_tests(),
                     analyze_when_stale(), assert_row_tests()] -%}
    {{- parts | map('trim') | reject('equalto', '') | join(';\n') -}}
{%- endmacro %}
