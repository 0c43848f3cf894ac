-- an order's reporting net amount is the sum of its non-deleted converted lines; checked for the
-- orders the latest run wrote (every order after a full build): a changed line rewrites its order too.
-- The latest cutoff as a literal (macro latest_batch_cutoff): with a subquery the planner hashed every
-- order line (0.5 s at scale 10) instead of reading the run's orders' lines by their index (0.02 s)
with

orders as (

    select * from {{ ref('fct_orders') }}
    where _batch_cutoff_xid = {{ latest_batch_cutoff(ref('fct_orders')) }}

),

line_totals as (

    select
        order_id,
        sum(net_amount_reporting) as net_amount_reporting
    from {{ ref('fct_order_lines') }}
    where not is_deleted
        and order_id in (select order_id from orders)
    group by order_id

),

final as (

    select
        orders.order_id,
        orders.net_amount_reporting,
        line_totals.net_amount_reporting as line_net_amount_reporting
    from orders
    left join line_totals
        on line_totals.order_id = orders.order_id
    where orders.net_amount_reporting <> coalesce(line_totals.net_amount_reporting, 0)

)

select * from final
