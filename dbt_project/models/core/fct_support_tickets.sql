-- incremental: a run rewrites the rows changed in batches the model has not consumed (macro changed_keys)
-- depends_on: {{ source('crm', 'support_tickets') }}
{{ incremental_by_key('ticket_id') }}

with

tickets as (

    select * from {{ ref('stg_crm__support_tickets') }}
    {%- if is_incremental() %}
    where ticket_id in ({{ changed_keys('support_tickets', 'ticket_id') }})
    {%- endif %}

),

final as (

    select
        ticket_id,
        customer_id,
        opened_at,
        opened_date,
        closed_at,
        closed_date,
        ticket_priority,
        ticket_category,
        ticket_status,
        satisfaction_score,
        round(cast({{ dbt.datediff('opened_at', 'closed_at', 'second') }} as {{ dbt.type_numeric() }}) / 3600, 2) as resolution_hours,
        closed_at is not null as is_closed,
        ticket_status in ('solved', 'closed') as is_resolved,
        satisfaction_score is not null as is_rated,
        is_deleted,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from tickets

)

select * from final
