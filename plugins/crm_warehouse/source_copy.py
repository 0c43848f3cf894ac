"""Stream one batch of changed rows from the CRM source into landing.<object>.

The fast path relays binary COPY chunks between the two servers without decoding them. When the
source holds text the warehouse cannot store (a SQL_ASCII source with bytes that are not UTF-8, or
NUL bytes), that COPY fails; the batch is then copied again row by row in Python: each text value
that is not valid UTF-8 is kept with its bad bytes escaped as \\xNN and the row is marked in
landing._invalid_encoding, so the load gate's built-in rule valid_encoding quarantines it. The load
never crashes and no row is lost.
"""

from __future__ import annotations

import logging
from datetime import datetime

import psycopg
from psycopg import errors, sql

from crm_warehouse.warehouse import LANDING, SOURCE_SCHEMA, Column

log = logging.getLogger(__name__)
ENCODING_ERRORS = (errors.CharacterNotInRepertoire, errors.UntranslatableCharacter)
TEXT_TYPES = ("text", "character varying", "character", "json", "citext")


def copy_batch(wh: psycopg.Connection, source: psycopg.Connection, table: str, columns: list[Column],
               batch: tuple[int, datetime], since: datetime | None, cutoff: datetime) -> int:
    """Copy the rows with updated_at in (since, cutoff] into landing; returns the row count."""
    try:
        with wh.transaction():  # a savepoint: a failed COPY leaves the batch's ledger row in place
            return _binary_copy(wh, source, table, columns, batch, since, cutoff)
    except ENCODING_ERRORS as exc:
        log.warning("%s: the source sent text the warehouse cannot store (%s); copying row by row and "
                    "quarantining those rows", table, str(exc).splitlines()[0])
    return _checked_copy(wh, source, table, columns, batch, since, cutoff)


def _changed_rows(table: str, select_list: sql.Composable, since: datetime | None, cutoff: datetime):
    lower = sql.Literal(since) if since else sql.SQL("'-infinity'::timestamptz")
    return sql.SQL("select {} from {}.{} where updated_at > {} and updated_at <= {}").format(
        select_list, sql.Identifier(SOURCE_SCHEMA), sql.Identifier(table), lower, sql.Literal(cutoff))


def _binary_copy(wh, source, table, columns, batch, since, cutoff) -> int:
    batch_id, extracted_at = batch
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    select_list = sql.SQL("{}, {}::bigint, {}::timestamptz").format(
        names, sql.Literal(batch_id), sql.Literal(extracted_at))
    select = sql.SQL("copy ({}) to stdout (format binary)").format(
        _changed_rows(table, select_list, since, cutoff))
    insert = sql.SQL("copy {}.{} ({}, _batch_id, _extracted_at) from stdin (format binary)").format(
        sql.Identifier(LANDING), sql.Identifier(table), names)
    with source.transaction(), source.cursor() as out, wh.cursor() as into:
        with out.copy(select) as reader, into.copy(insert) as writer:
            for chunk in reader:
                writer.write(chunk)
        return into.rowcount


def _checked_copy(wh, source, table, columns, batch, since, cutoff) -> int:
    batch_id, extracted_at = batch
    is_text = [c.type.startswith(TEXT_TYPES) for c in columns]
    # the raw bytes of every text value, whatever the source's encoding claims
    select_list = sql.SQL(", ").join(
        sql.SQL("convert_to({}::text, 'SQL_ASCII')").format(sql.Identifier(c.name)) if text
        else sql.Identifier(c.name) for c, text in zip(columns, is_text, strict=True))
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    insert = sql.SQL("copy {}.{} ({}, _batch_id, _extracted_at, _invalid_encoding) from stdin").format(
        sql.Identifier(LANDING), sql.Identifier(table), names)
    rows = 0
    with source.transaction(), source.cursor(name=f"crmwh_checked_copy_{batch_id}") as out, wh.cursor() as into:
        out.execute(_changed_rows(table, select_list, since, cutoff))
        with into.copy(insert) as writer:
            for record in out:
                values, invalid = _decoded(record, columns, is_text)
                writer.write_row([*values, batch_id, extracted_at, invalid or None])
                rows += 1
    return rows


def _decoded(record, columns: list[Column], is_text: list[bool]) -> tuple[list, list[str]]:
    values, invalid = list(record), []
    for index, text in enumerate(is_text):
        if not text or values[index] is None:
            continue
        raw = bytes(values[index])
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw.decode("utf-8", errors="backslashreplace")
            invalid.append(columns[index].name)
        if "\x00" in value:
            value = value.replace("\x00", "\\x00")
            invalid.append(columns[index].name)
        values[index] = value
    return values, invalid
