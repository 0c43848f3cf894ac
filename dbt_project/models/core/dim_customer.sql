-- incremental: a run recomputes every period of the customers that changed, or whose account did, in
-- batches the model has not consumed (macro customers_to_refresh); a full build recomputes everything
-- depends_on: {{ source('crm', 'customers') }}
-- depends_on: {{ source('crm', 'accounts') }}
{{ incremental_by_key('customer_id', unique_columns=['customer_id', 'version_number']) }}

-- type-2 customer dimension: one row per customer per period in which segment, owner, status,
-- country and soft delete stayed the same (int_customers__historized). The other attributes
-- (name, contact details, acquisition, account) are type 1: the latest version on every row.
with

customer_periods as (

    select * from {{ ref('int_customers__historized') }}
    {%- if is_incremental() %}
    where customer_id in ({{ customers_to_refresh() }})
    {%- endif %}

),

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

final as (

    select
        {{ dbt.hash(dbt.concat(["cast(customer_periods.customer_id as " ~ dbt.type_string() ~ ")", "'-'", "cast(customer_periods.period_number as " ~ dbt.type_string() ~ ")"])) }} as customer_version_key,
        customer_periods.customer_id,
        customer_periods.period_number as version_number,
        customer_periods.segment,
        customer_periods.owner_user_id,
        customer_periods.customer_status,
        customer_periods.country_code,
        customer_periods.is_deleted,
        customer_periods.valid_from,
        customer_periods.valid_to,
        customer_periods.valid_from_date,
        customer_periods.valid_to_date,
        customer_periods.is_current,
        customers.first_name,
        customers.last_name,
        customers.full_name,
        customers.email,
        customers.phone,
        customers.acquisition_channel,
        customers.acquisition_campaign_id,
        customers.account_id,
        accounts.account_name,
        customers.account_id is not null as is_b2b,
        customers.signed_up_at,
        customers.signed_up_date,
        customers.created_at,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from customer_periods
    inner join customers
        on customers.customer_id = customer_periods.customer_id
    left join accounts
        on accounts.account_id = customers.account_id

)

select * from final
