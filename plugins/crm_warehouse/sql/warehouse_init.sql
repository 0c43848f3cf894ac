-- Schemas and the load ledger of the warehouse. Idempotent: run by `crmwh init` and before every load.
create schema if not exists landing;     -- one batch per (object, run); unlogged; never read by dbt
create schema if not exists raw_crm;     -- append-only history, one table per CRM object
create schema if not exists quarantine;  -- rows that failed a row-level rule (later issue)
create schema if not exists ops;         -- load ledger, watermarks, audit

create table if not exists ops.load_batches (
    batch_id            bigint generated always as identity primary key,
    object_name         text not null,
    run_id              text not null,
    status              text not null check (status in ('extracting', 'landed', 'published', 'held', 'failed')),
    watermark_from      timestamptz,            -- exclusive; null on the first load
    watermark_to        timestamptz not null,   -- inclusive: the newest updated_at in the batch
    rows_extracted      bigint,
    rows_published      bigint not null default 0,
    rows_quarantined    bigint not null default 0,
    started_at          timestamptz not null default clock_timestamp(),
    landed_at           timestamptz,
    validated_at        timestamptz,
    published_at        timestamptz,
    extract_seconds     numeric(12, 3),
    validate_seconds    numeric(12, 3),
    publish_seconds     numeric(12, 3),
    message             text,
    validation          jsonb
);
create index if not exists load_batches_object_idx on ops.load_batches (object_name, batch_id desc);
create index if not exists load_batches_run_idx on ops.load_batches (run_id, object_name);

create table if not exists ops.watermarks (
    object_name         text primary key,
    watermark           timestamptz not null,
    last_batch_id       bigint not null references ops.load_batches (batch_id),
    updated_at          timestamptz not null default clock_timestamp()
);

-- The invariant, per batch: extracted = published + quarantined, or the batch is held.
create or replace view ops.batch_reconciliation as
select
    batch_id,
    object_name,
    run_id,
    status,
    rows_extracted,
    rows_published,
    rows_quarantined,
    case
        when status = 'held' then rows_published = 0
        when status = 'published' then rows_extracted = rows_published + rows_quarantined
    end as is_reconciled
from ops.load_batches;
