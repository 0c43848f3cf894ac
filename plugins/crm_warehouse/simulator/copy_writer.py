"""Encode numpy columns as PostgreSQL binary COPY data and stream it in.

Binary COPY spares the server all text parsing and lets numpy build whole chunks: each field encoder
returns a Field (fixed-width big-endian bytes per row, or a bytes array for text) and encode_rows()
scatters them into one buffer laid out as COPY's binary tuples.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
import psycopg
from psycopg.copy import QueuedLibpqWriter

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
TRAILER = b"\xff\xff"
CHUNK_ROWS = 50_000
PG_EPOCH_SECONDS = 946_684_800  # 2000-01-01, PostgreSQL's binary epoch
PG_EPOCH_DAYS = 10_957


class Field(NamedTuple):
    data: np.ndarray  # (n, width) uint8 for fixed-width types, or an 'S' array for text
    null: np.ndarray  # bool per row


Encoder = Callable[[dict[str, np.ndarray]], Field]


def _fixed(values: np.ndarray, dtype: str, null: np.ndarray | None = None) -> Field:
    arr = np.ascontiguousarray(values, dtype=dtype)
    n = len(arr)
    return Field(
        arr.view(np.uint8).reshape(n, arr.dtype.itemsize), np.zeros(n, bool) if null is None else null
    )


def int8(a: np.ndarray) -> Field:
    return _fixed(a, ">i8")


def int4(a: np.ndarray) -> Field:
    return _fixed(a, ">i4")


def ref8(a: np.ndarray) -> Field:
    """bigint ids where 0 means null."""
    return _fixed(a, ">i8", a <= 0)


def int4_null(a: np.ndarray) -> Field:
    return _fixed(a, ">i4", a < 0)


def timestamps(a: np.ndarray) -> Field:
    """Epoch seconds (-1 = null) to timestamptz: microseconds since 2000-01-01 UTC."""
    return _fixed((a - PG_EPOCH_SECONDS) * 1_000_000, ">i8", a < 0)


def dates(a: np.ndarray) -> Field:
    return _fixed(a - PG_EPOCH_DAYS, ">i4", a < 0)


def booleans(a: np.ndarray) -> Field:
    return _fixed(a, "u1")


def numeric(units: np.ndarray, scale: int) -> Field:
    """Non-negative integers in units of 10**-scale (e.g. cents for scale 2) as numeric.

    Layout: 3 integer base-10000 digits and enough fractional ones; PostgreSQL strips the zeros.
    """
    units = np.asarray(units, dtype=np.int64)
    frac_digits = (scale + 3) // 4
    whole, frac = np.divmod(units, 10**scale)
    frac = frac * 10 ** (4 * frac_digits - scale)
    digits = [whole // 10**8 % 10**4, whole // 10**4 % 10**4, whole % 10**4]
    digits += [frac // 10 ** (4 * (frac_digits - 1 - i)) % 10**4 for i in range(frac_digits)]
    n = len(units)
    head = np.array([len(digits), 2, 0, scale], dtype=">i2")
    cols = np.empty((n, 4 + len(digits)), dtype=">i2")
    cols[:, :4] = head
    cols[:, 4:] = np.stack(digits, axis=1)
    return Field(cols.view(np.uint8).reshape(n, cols.shape[1] * 2), np.zeros(n, bool))


def cents(a: np.ndarray) -> Field:
    return numeric(a, 2)


def _utf8(values) -> np.ndarray:
    values = np.asarray(values, dtype=str)
    try:
        return values.astype("S")  # fast path: ASCII
    except UnicodeEncodeError:
        return np.strings.encode(values, "utf-8")


def text(values: np.ndarray, null: np.ndarray | None = None) -> Field:
    data = _utf8(values)
    return Field(data, np.zeros(len(data), bool) if null is None else null)


def codes(a: np.ndarray, vocab: Sequence[str]) -> Field:
    """Vocabulary codes to text; a negative code is null."""
    table = _utf8(list(vocab) + [""])
    return Field(table[np.where(a < 0, len(vocab), a)], a < 0)


def encode_rows(fields: list[Field]) -> np.ndarray:
    """One buffer of binary COPY tuples: int16 field count, then per field int32 length and payload."""
    n = len(fields[0].null)
    lengths = []
    for f in fields:
        width = np.full(n, f.data.shape[1]) if f.data.ndim == 2 else np.strings.str_len(f.data)
        lengths.append(np.where(f.null, 0, width))
    row_len = 2 + sum(4 + ln for ln in lengths)
    starts = np.concatenate([[0], np.cumsum(row_len)[:-1]])
    buf = np.empty(int(row_len.sum()), np.uint8)
    buf[starts] = len(fields) >> 8
    buf[starts + 1] = len(fields) & 0xFF
    offset = starts + 2
    four = np.arange(4)
    for f, ln in zip(fields, lengths, strict=False):
        header = np.where(f.null, -1, ln).astype(">i4").view(np.uint8).reshape(n, 4)
        buf[offset[:, None] + four] = header
        payload = offset + 4
        if f.data.ndim == 2:
            keep = ~f.null
            buf[payload[keep, None] + np.arange(f.data.shape[1])] = f.data[keep]
        elif f.data.dtype.itemsize:
            chars = f.data.view(np.uint8).reshape(n, f.data.dtype.itemsize)
            inside = np.arange(chars.shape[1])[None, :] < ln[:, None]
            buf[(payload[:, None] + np.arange(chars.shape[1]))[inside]] = chars[inside]
        offset = payload + ln
    return buf


def binary_chunks(
    rows: dict[str, np.ndarray], spec: list[tuple[str, Encoder]]
) -> Iterable[bytes | np.ndarray]:
    yield SIGNATURE
    n = len(next(iter(rows.values())))
    for start in range(0, n, CHUNK_ROWS):
        part = {k: v[start : start + CHUNK_ROWS] for k, v in rows.items()}
        yield encode_rows([enc(part) for _, enc in spec])
    yield TRAILER


def copy_in(
    cur: psycopg.Cursor, target: str, columns: list[str], chunks: Iterable[bytes | np.ndarray]
) -> None:
    # the queued writer sends on a worker thread while this thread encodes the next chunk
    with cur.copy(
        f"copy {target} ({', '.join(columns)}) from stdin with (format binary)", writer=QueuedLibpqWriter(cur)
    ) as copy:
        for chunk in chunks:
            copy.write(memoryview(chunk))


def update_from(
    cur: psycopg.Cursor, table: str, key: str, columns: list[str], chunks: Iterable[bytes | np.ndarray]
) -> int:
    """Overwrite whole rows by key: COPY into a temp table, then one set-based UPDATE.

    is_deleted never goes back to false and updated_at never backwards: a soft delete applied in SQL
    wins over the simulator's memory.
    """
    tmp = f"_upd_{table}"
    cur.execute(f"create temp table {tmp} (like crm.{table}) on commit drop")
    copy_in(cur, tmp, columns, chunks)
    sets = [f"{c} = u.{c}" for c in columns if c not in (key, "is_deleted", "updated_at")]
    sets += ["is_deleted = t.is_deleted or u.is_deleted", "updated_at = greatest(t.updated_at, u.updated_at)"]
    cur.execute(f"update crm.{table} t set {', '.join(sets)} from {tmp} u where t.{key} = u.{key}")
    count = cur.rowcount
    cur.execute(f"drop table {tmp}")
    return count
