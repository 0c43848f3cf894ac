{#-
    What an incremental run of the core dimensions and deal and refund facts must recompute: the keys
    whose own version changed in batches the model has not consumed, and the keys whose row copies an
    attribute of another changed object (an account's name or segment, an order's status, a customer's
    segment) or converts at an FX rate that changed (int_fx_rates__filled_daily: from the first changed
    rate_date on, macro fx_rates_changed_from).
-#}

{#- contact_ids: the contact, or its account's name -#}
{% macro contacts_to_refresh() -%}
    {{ changed_keys('contacts', 'contact_id') }}
    union
    select contact_id from {{ ref('stg_crm__contacts') }}
    where account_id in ({{ changed_keys('accounts', 'account_id') }})
{%- endmacro %}


{#- customer_ids: the customer (and so its type-2 periods), or its account's name -#}
{% macro customers_to_refresh() -%}
    {{ changed_keys('customers', 'customer_id') }}
    union
    select customer_id from {{ ref('stg_crm__customers') }}
    where account_id in ({{ changed_keys('accounts', 'account_id') }})
{%- endmacro %}


{#- refund_ids: the refund, its order (customer, status, soft delete) or the FX rate of its date -#}
{% macro refunds_to_refresh() -%}
    {%- set fx_from = fx_rates_changed_from() -%}
    {{ changed_keys('refunds', 'refund_id') }}
    union
    select refund_id from {{ ref('stg_crm__refunds') }}
    where order_id in ({{ changed_keys('orders', 'order_id') }})
    {%- if fx_from %}
    union
    select refund_id from {{ ref('stg_crm__refunds') }} where refunded_date >= '{{ fx_from }}'
    {%- endif %}
{%- endmacro %}


{#- deal_ids: the deal, its stage history (every deal a changed history row is or was of), its account's
    or customer's segment, or the FX rate of its close (open deals: creation) date. Each branch is one the
    planner can estimate from the columns' statistics: an "or" of two key lookups, or a coalesce of two dates,
    it estimated at a third of all deals, and fct_deals then read the whole stage history and accounts
    instead of looking its few hundred deals up (0.39 s -> 0.15 s at scale 10) -#}
{% macro deals_to_refresh() -%}
    {%- set fx_from = fx_rates_changed_from() -%}
    {{ changed_keys('deals', 'deal_id') }}
    union
    {{ changed_keys('deal_stage_history', 'deal_id') }}
    union
    select deal_id from {{ ref('stg_crm__deals') }}
    where account_id in ({{ changed_keys('accounts', 'account_id') }})
    union
    select deal_id from {{ ref('stg_crm__deals') }}
    where customer_id in ({{ changed_keys('customers', 'customer_id') }})
    {%- if fx_from %}
    union
    -- coalesce(closed_date, created_date) >= the date
    select deal_id from {{ ref('stg_crm__deals') }}
    where closed_date >= '{{ fx_from }}' or (closed_date is null and created_date >= '{{ fx_from }}')
    {%- endif %}
{%- endmacro %}


{#- subscription_ids: the subscription; a running one once the latest loaded day is in a month it has no
    row for yet; one with a month whose FX rate (int_fx_rates__monthly) differs from the rate its row
    holds (a new month's first rate, a corrected rate) -#}
{% macro subscriptions_to_refresh() -%}
    {{ changed_keys('subscriptions', 'subscription_id') }}
    union
    select subscription_id
    from {{ this }}
    where ended_date is null
    group by subscription_id
    having max(month_start_date) < (
        select cast({{ dbt.date_trunc('month', 'latest_loaded_date') }} as date)
        from {{ ref('int_loaded_dates__summarized') }}
    )
    union
    select stored.subscription_id
    from {{ this }} as stored
    left join {{ ref('int_fx_rates__monthly') }} as fx_rates
        on fx_rates.currency_code = stored.currency_code
        and fx_rates.month_start_date = stored.month_start_date
    where fx_rates.fx_rate_to_reporting is distinct from stored.fx_rate_to_reporting
        or fx_rates.fx_rate_date is distinct from stored.fx_rate_date
{%- endmacro %}
