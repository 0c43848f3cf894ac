with

products as (

    select * from {{ ref('stg_crm__products') }}

),

final as (

    select
        product_id,
        sku,
        product_name,
        product_category,
        is_subscription,
        unit_cost_usd,
        is_active,
        created_at,
        is_deleted
    from products

)

select * from final
