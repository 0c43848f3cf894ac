"""The raw-load baselines of `make bench`, each moving every CRM table from the source to the warehouse:

    copy_pipe   plain `COPY ... TO STDOUT` piped into `COPY ... FROM STDIN` (the ceiling)
    pandas      `pandas.read_sql` + `DataFrame.to_sql`, as CRM-to-warehouse tutorials do it
    dlt         dlt's sql_database source into its postgres destination, with its fastest documented
                settings: the ConnectorX backend (Arrow tables, no per-row Python) and CSV loading (COPY)

copy_pipe and pandas write into tables with the source's DDL; dlt creates its own (it adds _dlt_load_id
and _dlt_id). Each returns rows, bytes (the rows' COPY text size, measured by copy_pipe, so MB/s compare),
seconds, rows/s and MB/s. pandas and dlt move the tables they are given (make bench: every table of at most
BASELINE_MAX_ROWS rows, or the slowest baseline would take a quarter of an hour at scale 10); the project's
figures for the same tables come from its load ledger.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from crm_warehouse import objects, warehouse

COPY_SCHEMA = "bench_copy_baseline"
PANDAS_SCHEMA = "bench_pandas_baseline"
DLT_DATASET = "bench_dlt_baseline"
PANDAS_CHUNK_ROWS = 100_000


def figures(rows: int, bytes_: int, seconds: float) -> dict:
    return {"rows": rows, "bytes": bytes_, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds),
            "mb_per_second": round(bytes_ / 1e6 / seconds, 1)}


def copy_pipe(source_dsn: str, warehouse_dsn: str) -> dict[str, dict]:
    """The ceiling: each source table piped with plain COPY into an identical, logged table; figures per table."""
    per_table = {}
    with psycopg.connect(source_dsn, autocommit=True) as src, psycopg.connect(warehouse_dsn, autocommit=True) as wh:
        for name in objects.all_objects():
            target = _create_like_source(src, wh, COPY_SCHEMA, name)
            bytes_, started = 0, time.perf_counter()
            with src.cursor() as out, wh.cursor() as into:
                with out.copy(sql.SQL("copy crm.{} to stdout").format(sql.Identifier(name))) as reader, \
                        into.copy(sql.SQL("copy {} from stdin").format(target)) as writer:
                    for chunk in reader:
                        bytes_ += len(chunk)
                        writer.write(chunk)
                rows = into.rowcount
            per_table[name] = {"rows": rows, "bytes": bytes_, "seconds": time.perf_counter() - started}
    return per_table


def total(per_table: dict[str, dict], names: list[str]) -> dict:
    """The figures of some tables together (per_table as copy_pipe returns it)."""
    chosen = [per_table[n] for n in names]
    return figures(sum(t["rows"] for t in chosen), sum(t["bytes"] for t in chosen),
                   sum(t["seconds"] for t in chosen))


def pandas_read_sql_to_sql(source_dsn: str, warehouse_dsn: str, names: list[str], bytes_: int) -> dict:
    """Each table read with pd.read_sql in chunks and appended with DataFrame.to_sql (SQLAlchemy, psycopg2)."""
    import pandas as pd
    from sqlalchemy import create_engine

    with psycopg.connect(source_dsn, autocommit=True) as src, psycopg.connect(warehouse_dsn, autocommit=True) as wh:
        for name in names:
            _create_like_source(src, wh, PANDAS_SCHEMA, name)
    source, target = create_engine(_sqlalchemy_url(source_dsn)), create_engine(_sqlalchemy_url(warehouse_dsn))
    rows, started = 0, time.perf_counter()
    try:
        for name in names:
            for frame in pd.read_sql(f'select * from crm."{name}"', source, chunksize=PANDAS_CHUNK_ROWS):
                frame.to_sql(name, target, schema=PANDAS_SCHEMA, if_exists="append", index=False)
                rows += len(frame)
    finally:
        source.dispose()
        target.dispose()
    return figures(rows, bytes_, time.perf_counter() - started)


def dlt_sql_database(source_dsn: str, warehouse_dsn: str, names: list[str], bytes_: int, work_dir: str) -> dict:
    """dlt 1.x: sql_database(backend="connectorx") -> postgres, loader_file_format="csv", one run."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # offline machines: no usage pings
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    import dlt
    from dlt.sources.sql_database import sql_database

    with psycopg.connect(warehouse_dsn, autocommit=True) as wh:
        wh.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(DLT_DATASET)))
        wh.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(DLT_DATASET + "_staging")))
    source = sql_database(credentials=_plain_url(source_dsn), schema="crm", table_names=names,
                          backend="connectorx")
    pipeline = dlt.pipeline(pipeline_name="crmwh_bench", pipelines_dir=work_dir, dataset_name=DLT_DATASET,
                            destination=dlt.destinations.postgres(credentials=_with_password(warehouse_dsn)))
    pipeline = pipeline.drop()  # no state from an earlier bench run: load everything again
    started = time.perf_counter()
    info = pipeline.run(source, loader_file_format="csv")
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    rows = sum(pipeline.last_trace.last_normalize_info.row_counts.get(name, 0) for name in names)
    return figures(rows, bytes_, seconds)


def _create_like_source(src: psycopg.Connection, wh: psycopg.Connection, schema: str, name: str) -> sql.Composed:
    wh.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
    wh.execute(sql.SQL("drop table if exists {}").format(target))
    columns = warehouse.source_columns(src, name)
    ddl = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in columns)
    wh.execute(sql.SQL("create table {} ({})").format(target, ddl))
    return target


def _with_password(dsn: str) -> str:
    """dlt's postgres destination insists on a password; a server that trusts the user ignores the placeholder."""
    parts = urlsplit(_plain_url(dsn))
    if parts.password is not None or "@" not in parts.netloc:
        return urlunsplit(parts)
    user, host = parts.netloc.split("@", 1)
    return urlunsplit((parts.scheme, f"{user}:unused-with-trust-auth@{host}", parts.path, parts.query, parts.fragment))


def _sqlalchemy_url(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(("postgresql+psycopg2", parts.netloc, parts.path, parts.query, parts.fragment))


def _plain_url(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))
