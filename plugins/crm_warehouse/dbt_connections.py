"""dbt's warehouse connections kept open from one node to the next within one in-process dbt invocation.

dbt closes a thread's connection after every node (BaseConnectionManager.release) and opens a new one for the
next: for a one-day build at scale 10 that is ~160 connections, each a TCP connect, a SCRAM password exchange
(~6 ms of the client's CPU), a new server process and its empty catalog caches. Kept open, each dbt thread
reuses its session: dbt's own `connection_named` already renames and reuses a thread's open connection; only
release closes it. dbt still closes every connection when the invocation ends (cleanup_connections).

What a node leaves in its session cannot reach the next: release rolls back an open transaction (as dbt's close
does), and drops the session's temporary tables. Every `set` in this project's macros is `set local`. A
connection that broke is closed as dbt would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dbt.adapters.base.connections import BaseConnectionManager
from dbt.adapters.contracts.connection import ConnectionState

_LOCK = threading.Lock()
_ACTIVE = 0
_DBT_RELEASE = BaseConnectionManager.release


def _release_keeping_open(self: BaseConnectionManager) -> None:
    with self.lock:
        conn = self.get_if_exists()
    if conn is None or conn.state != ConnectionState.OPEN or getattr(conn.handle, "closed", 1):
        return _DBT_RELEASE(self)
    try:
        if conn.transaction_open:
            self._rollback_handle(conn)
            conn.transaction_open = False
        handle = conn.handle
        with handle.cursor() as cursor:
            cursor.execute("discard temp")
        handle.commit()
    except Exception:
        conn.transaction_open = False
        return _DBT_RELEASE(self)  # closes it; the next node opens a new one


@contextmanager
def kept_per_thread() -> Iterator[None]:
    """Within the block, a dbt thread's connection stays open between its nodes (nested and concurrent blocks
    share the one replacement; dbt's own release is back once the last block ends)."""
    global _ACTIVE
    with _LOCK:
        _ACTIVE += 1
        BaseConnectionManager.release = _release_keeping_open
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE -= 1
            if _ACTIVE == 0:
                BaseConnectionManager.release = _DBT_RELEASE
