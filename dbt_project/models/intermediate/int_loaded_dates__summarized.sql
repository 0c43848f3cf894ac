-- one row: the latest loaded day, the default as-of date of the marts (see macro as_of_date)
with

orders as (

    select max(ordered_date) as latest_order_date
    from {{ ref('stg_crm__orders') }}

),

activities as (

    select max(occurred_date) as latest_activity_date
    from {{ ref('stg_crm__activities') }}

),

final as (

    select
        orders.latest_order_date,
        activities.latest_activity_date,
        case
            when activities.latest_activity_date is null then orders.latest_order_date
            when orders.latest_order_date is null then activities.latest_activity_date
            when activities.latest_activity_date > orders.latest_order_date then activities.latest_activity_date
            else orders.latest_order_date
        end as latest_loaded_date
    from orders
    cross join activities

)

select * from final
