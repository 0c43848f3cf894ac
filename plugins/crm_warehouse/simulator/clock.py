"""Simulated time and deterministic random streams.

All times inside the simulator are int64 seconds since the Unix epoch (UTC); dates are int days since
the epoch. -1 stands for "null" in both. Day index d covers [origin + d*DAY, origin + (d+1)*DAY).
"""

import datetime as dt
import zlib

import numpy as np

from . import params

DAY = 86_400
HOUR = 3_600
NULL = -1
DEFAULT_END_DATE = dt.date(2026, 6, 30)
EPOCH = dt.date(1970, 1, 1)


def date_to_seconds(value: dt.date) -> int:
    return (value - EPOCH).days * DAY


def seconds_to_datetime(seconds: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=int(seconds))


def rng_for(seed: int, stream: str, day: int) -> np.random.Generator:
    """A generator that depends only on (seed, stream name, day): re-running a day reproduces it."""
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode()), int(day) + 1_000_000])


def times_in_day(
    rng: np.random.Generator, start: int, n: int, lo: float = 0.0, hi: float = 1.0
) -> np.ndarray:
    """n random instants in [start + lo*DAY, start + hi*DAY), as int64 seconds."""
    return start + (rng.uniform(lo, hi, n) * DAY).astype(np.int64)


def later_same_day(rng: np.random.Generator, times: np.ndarray, origin: int, max_delay: int) -> np.ndarray:
    """A random instant after each time, at most max_delay later and still inside the same day."""
    times = np.asarray(times, dtype=np.int64)
    day_end = origin + ((times - origin) // DAY + 1) * DAY - 1
    room = np.minimum(day_end - times, max_delay)
    return times + (rng.random(len(times)) * room).astype(np.int64)


def days_since_epoch(seconds: np.ndarray | int) -> np.ndarray | int:
    return np.floor_divide(seconds, DAY)


def weekday_factor(start: int) -> float:
    """Business days are busier than weekends (1970-01-01 was a Thursday)."""
    return params.WEEKDAY_FACTOR[(int(start // DAY) + 3) % 7]


def season_factor(start: int) -> float:
    """A yearly cycle peaking in late November (+15%), lowest in late May (-15%)."""
    day_of_year = (start // DAY) % 365.25
    return 1.0 + 0.15 * np.cos(2 * np.pi * (day_of_year - 330) / 365.25)
