"""A growable column store (dict of numpy arrays) and its deterministic byte serialisation."""

import json

import numpy as np


class Frame:
    """Columns of equal length; append grows capacity geometrically so daily appends stay cheap."""

    def __init__(self, columns: dict[str, np.ndarray] | None = None):
        """Adopt the given equal-length arrays (not copied) as the frame's columns."""
        self._cols: dict[str, np.ndarray] = dict(columns or {})
        self.n = len(next(iter(self._cols.values()))) if self._cols else 0

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    def __len__(self) -> int:
        return self.n

    def __contains__(self, name: str) -> bool:
        return name in self._cols

    def __getitem__(self, name: str) -> np.ndarray:
        return self._cols[name][: self.n]

    def __setitem__(self, name: str, values) -> None:
        self._cols[name][: self.n] = values

    def append(self, **cols: np.ndarray) -> None:
        arrays = {k: np.asarray(v) for k, v in cols.items()}
        if not arrays:
            return
        m = len(next(iter(arrays.values())))
        if not self._cols:
            self._cols = {k: np.empty((0,) + a.shape[1:], dtype=a.dtype) for k, a in arrays.items()}
        if set(arrays) != set(self._cols):
            raise ValueError(f"column mismatch: {sorted(set(arrays) ^ set(self._cols))}")
        if m == 0:
            return
        need = self.n + m
        cap = len(next(iter(self._cols.values())))
        if need > cap:
            new_cap = max(need, cap * 2, 64)
            for k, a in self._cols.items():
                grown = np.empty((new_cap,) + a.shape[1:], dtype=a.dtype)
                grown[: self.n] = a[: self.n]
                self._cols[k] = grown
        for k, a in arrays.items():
            self._cols[k][self.n : need] = a
        self.n = need

    def take(self, selector) -> dict[str, np.ndarray]:
        return {k: a[: self.n][selector] for k, a in self._cols.items()}

    def keep(self, mask: np.ndarray) -> None:
        self._cols = {k: a[: self.n][mask].copy() for k, a in self._cols.items()}
        self.n = int(np.count_nonzero(mask))

    def to_dict(self) -> dict[str, np.ndarray]:
        return {k: a[: self.n].copy() for k, a in self._cols.items()}


def dumps(frames: dict[str, Frame], extra: dict[str, np.ndarray]) -> bytes:
    """Serialise frames and loose arrays: a JSON header followed by the raw array bytes."""
    header, blobs, offset = [], [], 0
    items = [(f"{t}.{c}", frames[t][c]) for t in sorted(frames) for c in frames[t].columns]
    items += [(f":{k}", np.asarray(v)) for k, v in sorted(extra.items())]
    for key, arr in items:
        arr = np.ascontiguousarray(arr)
        data = arr.tobytes()
        header.append([key, arr.dtype.str, list(arr.shape), offset, len(data)])
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    return len(head).to_bytes(8, "little") + head + b"".join(blobs)


def loads(blob: bytes) -> tuple[dict[str, Frame], dict[str, np.ndarray]]:
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    body = memoryview(blob)[8 + size :]
    tables: dict[str, dict[str, np.ndarray]] = {}
    extra: dict[str, np.ndarray] = {}
    for key, dtype, shape, offset, length in header:
        arr = np.frombuffer(body[offset : offset + length], dtype=np.dtype(dtype)).reshape(shape).copy()
        if key.startswith(":"):
            extra[key[1:]] = arr
        else:
            table, col = key.split(".", 1)
            tables.setdefault(table, {})[col] = arr
    frames = {}
    for t, cols in tables.items():
        frames[t] = Frame(cols)
    return frames, extra
