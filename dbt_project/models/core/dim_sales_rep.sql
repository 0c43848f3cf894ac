with

users as (

    select * from {{ ref('stg_crm__users') }}

),

teams as (

    select * from {{ ref('stg_crm__teams') }}

),

final as (

    select
        users.user_id,
        users.full_name,
        users.email,
        users.user_role,
        users.hired_date,
        users.team_id,
        teams.team_name,
        teams.region as team_region,
        users.is_deleted,
        coalesce(teams.is_deleted, false) as is_team_deleted
    from users
    left join teams
        on teams.team_id = users.team_id

)

select * from final
