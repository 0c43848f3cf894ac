with

tickets as (

    select * from {{ ref('stg_crm__support_tickets') }}

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
        is_deleted
    from tickets

)

select * from final
