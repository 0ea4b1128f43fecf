"""Durations and byte sizes as Compose files write them, converted to Engine API integers.

Durations use Go's `time.ParseDuration` syntax ("1m30s", "500ms", "1.5h"), which Compose
uses for healthcheck timings and `stop_grace_period`. Byte sizes use the docker CLI's
`RAMInBytes` syntax ("512m", "1g", "1.5GiB"), where every unit is a power of 1024. Both raise
`SpecError` naming the field and the accepted forms.
"""

from __future__ import annotations

import math
import re
from typing import Any

from controller.errors import SpecError

# The Engine API stores durations and sizes as signed 64-bit integers.
INT64_MAX = 2**63 - 1

NANOSECONDS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}

BYTES_PER_UNIT = {
    "": 1,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
    "p": 1024**5,
}

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_BYTE_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp]?)(?:i?b)?$", re.IGNORECASE)

DURATION_HINT = 'a duration such as "30s", "1m30s", "500ms" or "1h" (units ns, us, ms, s, m, h)'
BYTES_HINT = 'a byte size such as 67108864, "512m", "1g" or "1.5GiB" (units b, k, m, g, t, p)'


def parse_duration(value: Any, *, field: str) -> int:
    """Convert a Compose duration to nanoseconds.

    A bare number (int or float, not bool) counts as seconds, because that is what a
    duration field without a unit can only sensibly mean. Negative durations are invalid.
    """
    if isinstance(value, bool):
        raise SpecError(field, f"invalid duration {value!r}: expected {DURATION_HINT}")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise SpecError(field, f"invalid duration {value!r}: expected {DURATION_HINT}")
        return _check_range(value * 1_000_000_000, value, field)
    if not isinstance(value, str):
        raise SpecError(field, f"invalid duration {value!r}: expected {DURATION_HINT}")

    text = value.strip()
    if text == "0":
        return 0

    total = 0.0
    position = 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise SpecError(field, f"invalid duration {value!r}: expected {DURATION_HINT}")
        number, unit = match.groups()
        total += float(number) * NANOSECONDS_PER_UNIT[unit]
        position = match.end()

    if position == 0:
        raise SpecError(field, f"invalid duration {value!r}: expected {DURATION_HINT}")
    return _check_range(total, value, field)


def parse_bytes(value: Any, *, field: str) -> int:
    """Convert a Compose byte size ("512m", "1g", or an integer count of bytes) to bytes."""
    if isinstance(value, bool):
        raise SpecError(field, f"invalid size {value!r}: expected {BYTES_HINT}")
    if isinstance(value, int):
        if value < 0:
            raise SpecError(field, f"invalid size {value!r}: expected {BYTES_HINT}")
        return _check_range(value, value, field)
    if isinstance(value, float):
        if value < 0 or not math.isfinite(value):
            raise SpecError(field, f"invalid size {value!r}: expected {BYTES_HINT}")
        return _check_range(value, value, field)
    if not isinstance(value, str):
        raise SpecError(field, f"invalid size {value!r}: expected {BYTES_HINT}")

    match = _BYTE_SIZE.match(value.strip())
    if match is None:
        raise SpecError(field, f"invalid size {value!r}: expected {BYTES_HINT}")
    number, unit = match.groups()
    return _check_range(float(number) * BYTES_PER_UNIT[unit.lower()], value, field)


def _check_range(number: float, value: Any, field: str) -> int:
    """Round a parsed amount to an integer the Engine API's int64 fields can store."""
    if number > INT64_MAX:
        raise SpecError(field, f"{value!r} is too large: the engine stores at most {INT64_MAX} (nanoseconds or bytes)")
    return int(round(number))


def format_duration(nanoseconds: int) -> str:
    """Format nanoseconds the way Go prints a `time.Duration` ("1m30s", "500ms", "0s").

    The docker CLI accepts this format in `--health-interval` and similar flags.
    """
    if nanoseconds == 0:
        return "0s"
    if nanoseconds < 1_000:
        return f"{nanoseconds}ns"
    if nanoseconds < 1_000_000:
        return f"{_trim(nanoseconds / 1_000)}us"
    if nanoseconds < 1_000_000_000:
        return f"{_trim(nanoseconds / 1_000_000)}ms"

    hours, rest = divmod(nanoseconds, NANOSECONDS_PER_UNIT["h"])
    minutes, rest = divmod(rest, NANOSECONDS_PER_UNIT["m"])
    seconds = rest / NANOSECONDS_PER_UNIT["s"]
    text = ""
    if hours:
        text += f"{hours}h"
    if hours or minutes:
        text += f"{minutes}m"
    return f"{text}{_trim(seconds)}s"


def _trim(number: float) -> str:
    """Print a float without a trailing ".0" and without exponent notation."""
    text = f"{number:.9f}".rstrip("0").rstrip(".")
    return text or "0"
