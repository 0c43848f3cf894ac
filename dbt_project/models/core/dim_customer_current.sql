-- convenience: the current row of dim_customer per customer (one row per customer_id)
{{ config(materialized='view') }}

with

customers as (

    select * from {{ ref('dim_customer') }}

),

final as (

    select * from customers
    where is_current

)

select * from final
