"""Moving columns between the warehouse and numpy: binary COPY out, text COPY in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import psycopg
from psycopg import sql

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_PG_TYPES = {"int8": ">i8", "int4": ">i4", "float8": ">f8"}


def read_columns(conn: psycopg.Connection, query: sql.Composable, types: Sequence[str]) -> list[np.ndarray]:
    """Run `query` as a binary COPY and return one numpy array per column.

    Every column must be not-null and of a fixed-width type in `types` (int8, int4, float8), which makes every
    row the same size: the whole result is then one structured np.frombuffer, with no per-row Python work.
    """
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(sql.SQL("copy ({}) to stdout (format binary)").format(query)) as copy:
        for chunk in copy:
            buffer += chunk
    if not buffer.startswith(_SIGNATURE):
        raise ValueError("unexpected binary COPY header")
    offset = 19 + int.from_bytes(buffer[15:19], "big")
    fields = [("n_fields", ">i2")]
    for i, name in enumerate(types):
        fields += [(f"len{i}", ">i4"), (f"col{i}", _PG_TYPES[name])]
    row = np.dtype(fields)
    n_rows, rest = divmod(len(buffer) - offset - 2, row.itemsize)
    if rest:
        raise ValueError("binary COPY rows are not of fixed size: is a column null or of another type?")
    rows = np.frombuffer(buffer, dtype=row, count=n_rows, offset=offset)
    for i, name in enumerate(types):
        if n_rows and np.any(rows[f"len{i}"] != np.dtype(_PG_TYPES[name]).itemsize):
            raise ValueError(f"column {i} of the COPY is null somewhere or not {name}")
    return [rows[f"col{i}"].astype(_PG_TYPES[name].lstrip(">")) for i, name in enumerate(types)]


def write_rows(cur: psycopg.Cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """COPY rows into schema-qualified `table` (text format; values already formatted or None)."""
    schema, name = table.split(".")
    statement = sql.SQL("copy {}.{} ({}) from stdin").format(
        sql.Identifier(schema), sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def relation_columns(conn: psycopg.Connection, schema: str, table: str) -> set[str]:
    cur = conn.execute("select column_name from information_schema.columns where table_schema = %s "
                       "and table_name = %s", (schema, table))
    return {name for (name,) in cur.fetchall()}
