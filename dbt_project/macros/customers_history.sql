{#-
    Type-2 periods of one CRM table from its append-only raw history (source('crm', table)).

    raw_crm keeps one row per extracted version (_batch_id, _extracted_at). A version is valid from
    its updated_at until the next version's updated_at; the first known version is valid from the
    row's created_at (the CRM recorded the row then; earlier states were never extracted).
    Consecutive versions whose tracked columns are equal (null = null) collapse into one period,
    so a period changes only when a tracked column changes.

    Columns: the key, period_number (1, 2, ... per key), the tracked columns, valid_from,
    valid_to (null for the current period; exclusive), their UTC dates, is_current and
    _batch_cutoff_xid.

    In an incremental model (unique_key = the key, delete+insert) a run recomputes only the keys with a
    version in a batch the model has not consumed yet, from their whole history (macro changed_keys).
-#}
{% macro customers_historize(source_table, key_column, tracked_columns) -%}

with

source_versions as (

    select
        {{ key_column }},
        {%- for column in tracked_columns %}
        {{ column }},
        {%- endfor %}
        created_at,
        updated_at,
        _batch_id,
        -- the same version extracted twice (a re-run) counts once
        row_number() over (
            partition by {{ key_column }}, updated_at
            order by _batch_id desc
        ) as duplicate_rank
    from {{ source('crm', source_table) }}
    {%- if is_incremental() %}
    where {{ key_column }} in ({{ changed_keys(source_table, key_column) }})
    {%- endif %}

),

versions as (

    select * from source_versions
    where duplicate_rank <= 1

),

changes as (

    select
        *,
        case
            when lag(updated_at) over key_versions is null then 1
            {%- for column in tracked_columns %}
            when {{ column }} is distinct from lag({{ column }}) over key_versions then 1
            {%- endfor %}
            else 0
        end as is_change
    from versions
    window key_versions as (partition by {{ key_column }} order by updated_at, _batch_id)

),

islands as (

    select
        *,
        sum(is_change) over (
            partition by {{ key_column }}
            order by updated_at, _batch_id
            rows between unbounded preceding and current row
        ) as period_number
    from changes

),

periods as (

    select
        {{ key_column }},
        period_number,
        {%- for column in tracked_columns %}
        {{ column }},
        {%- endfor %}
        case when period_number = 1 then min(created_at) else min(updated_at) end as valid_from
    from islands
    group by
        {{ key_column }},
        period_number
        {%- for column in tracked_columns %},
        {{ column }}
        {%- endfor %}

),

bounded as (

    select
        *,
        lead(valid_from) over (partition by {{ key_column }} order by period_number) as valid_to
    from periods

)

select
    {{ key_column }},
    cast(period_number as integer) as period_number,
    {%- for column in tracked_columns %}
    {{ column }},
    {%- endfor %}
    valid_from,
    valid_to,
    {{ utc_date('valid_from') }} as valid_from_date,
    {{ utc_date('valid_to') }} as valid_to_date,
    valid_to is null as is_current,
    {{ batch_cutoff() }} as _batch_cutoff_xid
from bounded

{%- endmacro %}


{#-
    True when a type-2 period (valid_from_date / valid_to_date, UTC dates) is the state at the end
    of the day date_expr: the last version recorded on or before that day.
-#}
{% macro customers_is_valid_on(relation_alias, date_expr) -%}
    ({{ relation_alias }}.valid_from_date <= {{ date_expr }}
        and ({{ relation_alias }}.valid_to_date is null or {{ relation_alias }}.valid_to_date > {{ date_expr }}))
{%- endmacro %}
