-- The load ledger of the warehouse. Idempotent: run by `crmwh init` and before every load, as crm_loader,
-- after access.apply has made the loader's schemas (owned by crm_loader):
--   landing     one batch per (object, run); unlogged; never read by dbt
--   raw_crm     append-only history, one table per CRM object
--   quarantine  rows that broke an error rule of the load gate, per object
--   ops         load ledger, watermarks, audit

create table if not exists ops.load_batches (
    batch_id            bigint generated always as identity primary key,
    object_name         text not null,
    run_id              text not null,
    status              text not null,
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
-- statuses: extracting -> landed -> published | held; held -> published (released) | replayed;
-- failed = abandoned by a crashed run (its rows are re-extracted by the next run)
alter table ops.load_batches drop constraint if exists load_batches_status_check;
alter table ops.load_batches add constraint load_batches_status_check
    check (status in ('extracting', 'landed', 'published', 'held', 'replayed', 'failed'));
alter table ops.load_batches add column if not exists held_rule text;
alter table ops.load_batches add column if not exists replayed_by_batch_id bigint;
alter table ops.load_batches add column if not exists rows_reread bigint not null default 0;  -- look-back duplicates dropped
alter table ops.load_batches add column if not exists columns_added text[];  -- new source columns, added to landing/raw/quarantine
-- the transaction that published the batch: incremental dbt models consume the batches published
-- by transactions below the run's cutoff (see dbt_project/macros/incremental_batches.sql)
alter table ops.load_batches add column if not exists published_xid bigint;
create index if not exists load_batches_published_xid_idx on ops.load_batches (object_name, published_xid);
-- extract: rows changed in the source; delete_detection: tombstones of rows hard-deleted in the source,
-- written by key reconciliation (published at once, never gated; the watermark does not move)
alter table ops.load_batches add column if not exists batch_kind text not null default 'extract';
alter table ops.load_batches drop constraint if exists load_batches_batch_kind_check;
alter table ops.load_batches add constraint load_batches_batch_kind_check
    check (batch_kind in ('extract', 'delete_detection'));
create index if not exists load_batches_object_idx on ops.load_batches (object_name, batch_id desc);
create index if not exists load_batches_run_idx on ops.load_batches (run_id, object_name);

create table if not exists ops.watermarks (
    object_name         text primary key,
    watermark           timestamptz not null,
    last_batch_id       bigint not null references ops.load_batches (batch_id),
    updated_at          timestamptz not null default clock_timestamp()
);

-- Source columns the loader added to landing, raw and quarantine (schema evolution), even when the
-- run that found them had no changed rows (its batch, if any, lists them in load_batches.columns_added).
create table if not exists ops.schema_changes (
    change_id           bigint generated always as identity primary key,
    object_name         text not null,
    column_name         text not null,
    column_type         text not null,
    change              text not null check (change in ('added')),
    run_id              text not null,
    detected_at         timestamptz not null default clock_timestamp()
);

-- Core dbt builds of the pipeline, every attempt: the next one builds only what is downstream of the
-- objects with a batch published at or above from_xid of the last one that succeeded, unless an attempt
-- since had another fingerprint (project files, vars, dbt versions); see plugins/crm_warehouse/build_scope.py
create table if not exists ops.core_builds (
    build_id            bigint generated always as identity primary key,
    fingerprint         text not null,
    from_xid            bigint not null,
    started_at          timestamptz not null,
    selected_objects    text[],  -- null: every model was built
    succeeded           boolean not null default false,
    finished_at         timestamptz
);

-- Key reconciliation (hard-delete detection), one row per object and reconciliation, also when it
-- found nothing: the source's keys against the keys whose latest raw version is live. Each key missing
-- from the source got a tombstone in raw_crm.<object>, all of them in the batch batch_id.
create table if not exists ops.key_reconciliations (
    reconciliation_id   bigint generated always as identity primary key,
    object_name         text not null,
    run_id              text not null,
    reconciled_at       timestamptz not null,     -- the source's clock: the tombstones' _deleted_at
    source_keys         bigint not null,          -- key values in crm.<object>
    raw_live_keys       bigint not null,          -- keys whose latest raw version was not a tombstone, before
    deleted_keys        bigint not null,          -- of those, missing from the source: tombstoned now
    restored_keys       bigint not null default 0,  -- tombstoned keys back in the source (not undone)
    batch_id            bigint references ops.load_batches (batch_id),  -- null when nothing was deleted
    seconds             numeric(12, 3)
);
create index if not exists key_reconciliations_object_idx on ops.key_reconciliations (object_name, reconciled_at desc);

-- Rows of a batch that broke a row rule of the load gate: error rules send the row to quarantine,
-- warn rules are only recorded. Written by the row screen, read by the GX suite of the batch.
create table if not exists ops.row_findings (
    batch_id            bigint not null references ops.load_batches (batch_id),
    object_name         text not null,
    row_id              tid not null,             -- the row's ctid in landing.<object>
    row_key             text,                     -- the object's key, as text (null when missing)
    error_rules         text[] not null,
    warn_rules          text[] not null,
    primary key (batch_id, row_id)
);

-- Release and replay of held batches: who, when, why, with the counts and the new batch.
create table if not exists ops.batch_actions (
    action_id           bigint generated always as identity primary key,
    batch_id            bigint not null references ops.load_batches (batch_id),
    action              text not null check (action in ('release', 'replay')),
    actor               text not null,
    reason              text,
    acted_at            timestamptz not null default clock_timestamp(),
    rows_published      bigint,
    rows_quarantined    bigint,
    new_batch_id        bigint
);

-- Failed tasks of the pipeline (Airflow failure callback) and where the alert was sent.
create table if not exists ops.alerts (
    alert_id            bigint generated always as identity primary key,
    raised_at           timestamptz not null default clock_timestamp(),
    dag_id              text,
    task_id             text,
    run_id              text,
    try_number          integer,
    message             text not null,
    delivered_to        text,                      -- null: recorded only (no alert connection)
    delivery_error      text
);

-- Versions of the marts schema: write-audit-publish builds, failed audits and rollbacks.
create table if not exists ops.marts_versions (
    version_id          bigint generated always as identity primary key,
    action              text not null check (action in ('publish', 'rollback')),
    status              text not null,             -- published | failed_build | failed_audit
    run_id              text,
    as_of_date          date,
    actor               text,
    message             text,
    audit               jsonb,
    recorded_at         timestamptz not null default clock_timestamp(),
    published_at        timestamptz
);

-- The invariant, per batch: extracted = published + quarantined, or the batch is held (nothing
-- published, its rows kept in landing), replayed (its rows archived in quarantine as
-- superseded_by_replay, the range extracted again as a new batch) or failed (abandoned by a crashed
-- run: nothing published, its landed rows dropped, the range extracted again by the next run).
drop view if exists ops.batch_reconciliation;
create view ops.batch_reconciliation as
select
    batch_id,
    object_name,
    run_id,
    batch_kind,
    status,
    held_rule,
    rows_extracted,
    rows_published,
    rows_quarantined,
    replayed_by_batch_id,
    case
        when status = 'held' then rows_published = 0 and rows_quarantined = 0
        when status = 'replayed' then rows_published = 0 and rows_extracted = rows_quarantined
        when status = 'published' then rows_extracted = rows_published + rows_quarantined
        when status = 'failed' then rows_published = 0 and rows_quarantined = 0
    end as is_reconciled
from ops.load_batches;
