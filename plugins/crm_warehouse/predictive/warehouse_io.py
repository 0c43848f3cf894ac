"""Moving columns between the warehouse and numpy: binary arrays out, text COPY in."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import psycopg
from psycopg import sql

# element type oid of a binary array, and the big-endian numpy type of its values
_PG_TYPES = {"int8": (20, ">i8"), "int4": (23, ">i4"), "float8": (701, ">f8")}
_ARRAY_HEADER = 20  # ndim, has-nulls flag, element oid, then the length and lower bound of the one dimension


def read_columns(conn: psycopg.Connection, query: sql.Composable, types: Sequence[str]) -> list[np.ndarray]:
    """Run `query` and return one numpy array per column, in the query's row order.

    Every column must be not-null and of a fixed-width type in `types` (int8, int4, float8). The server
    gathers each column into one array (array_agg) sent in binary, so the client parses one value per column
    with np.frombuffer. A binary COPY instead yields one chunk per row through psycopg's Python loop
    (0.5-1.5 us a row, competing with the server for the CPUs): for the ~1.5 M rows of the scoring input the
    arrays cut pipeline.load from 1.6-3.1 s to 0.9-1.4 s, now mostly the server computing the orders query.
    """
    names = [sql.Identifier(f"c{i}") for i in range(len(types))]
    gathered = sql.SQL("select {} from ({}) as q ({})").format(
        sql.SQL(", ").join(sql.SQL("array_agg({})").format(name) for name in names), query,
        sql.SQL(", ").join(names))
    with _serial_plans(conn), conn.cursor(binary=True) as cur:
        cur.execute(gathered)
        return [_array_values(cur.pgresult.get_value(0, i), i, name) for i, name in enumerate(types)]


@contextmanager
def _serial_plans(conn: psycopg.Connection) -> Iterator[None]:
    """No parallel workers while the block runs: a parallel aggregate interleaves its workers' rows, and the
    arrays must keep the row order of the plain query (event arrays and sums depend on it)."""
    with conn.transaction(force_rollback=True):  # the rollback ends the setting, whatever the caller's mode
        conn.execute("set local max_parallel_workers_per_gather = 0")
        yield


def _array_values(payload: bytes | None, column: int, name: str) -> np.ndarray:
    """The values of a one-dimensional binary array of `name` without nulls (None, from no rows: empty)."""
    oid, pg_type = _PG_TYPES[name]
    if payload is None:
        return np.zeros(0, pg_type.lstrip(">"))
    ndim, has_nulls, element_oid = np.frombuffer(payload, ">i4", count=3)
    if ndim != 1 or element_oid != oid:
        raise ValueError(f"column {column} of the query is not {name}")
    if has_nulls:
        raise ValueError(f"column {column} of the query is null somewhere")
    n_rows = int.from_bytes(payload[12:16], "big")
    element = np.dtype([("length", ">i4"), ("value", pg_type)])
    if len(payload) != _ARRAY_HEADER + n_rows * element.itemsize:
        raise ValueError(f"column {column} of the query: unexpected binary array size")
    values = np.frombuffer(payload, element, count=n_rows, offset=_ARRAY_HEADER)["value"]
    return values.astype(pg_type.lstrip(">"))


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
