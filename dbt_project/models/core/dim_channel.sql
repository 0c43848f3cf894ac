-- acquisition / marketing channels: every channel named by customers, leads, deals or campaigns
with

customers as (

    select acquisition_channel as channel_code from {{ ref('stg_crm__customers') }}

),

leads as (

    select source_channel as channel_code from {{ ref('stg_crm__leads') }}

),

deals as (

    select source_channel as channel_code from {{ ref('stg_crm__deals') }}

),

campaigns as (

    select * from {{ ref('stg_crm__campaigns') }}

),

all_channels as (

    select channel_code from customers
    union
    select channel_code from leads
    union
    select channel_code from deals
    union
    select campaign_channel as channel_code from campaigns

),

campaign_counts as (

    select
        campaign_channel as channel_code,
        count(*) as campaign_count
    from campaigns
    where not is_deleted
    group by campaign_channel

),

final as (

    select
        all_channels.channel_code,
        case all_channels.channel_code
            when 'organic' then 'Organic'
            when 'paid_search' then 'Paid search'
            when 'social' then 'Paid social'
            when 'email' then 'Email'
            when 'referral' then 'Referral'
            when 'partner' then 'Partner'
            when 'outbound' then 'Outbound sales'
            else all_channels.channel_code
        end as channel_name,
        coalesce(campaign_counts.campaign_count, 0) as campaign_count,
        -- a channel is paid when campaigns (with spend) run in it: its CAC is defined
        coalesce(campaign_counts.campaign_count, 0) > 0 as is_paid_channel
    from all_channels
    left join campaign_counts
        on campaign_counts.channel_code = all_channels.channel_code
    where all_channels.channel_code is not null

)

select * from final
