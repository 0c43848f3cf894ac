-- incremental: a run rewrites the rows changed in batches the model has not consumed (macro changed_keys)
-- depends_on: {{ source('crm', 'campaign_touches') }}
{{ incremental_by_key('campaign_touch_id') }}

with

touches as (

    select * from {{ ref('stg_crm__campaign_touches') }}
    {%- if is_incremental() %}
    where campaign_touch_id in ({{ changed_keys('campaign_touches', 'touch_id') }})
    {%- endif %}

),

final as (

    select
        campaign_touch_id,
        campaign_id,
        customer_id,
        lead_id,
        touch_type,
        touched_at,
        touched_date,
        is_deleted,
        {{ batch_cutoff() }} as _batch_cutoff_xid
    from touches

)

select * from final
