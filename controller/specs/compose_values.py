"""Type checks and conversions for the values of a Compose service mapping.

Each function takes the value and its field path (`spec.ports[1]`) and returns the value in
the type the Engine API wants, or raises `SpecError` naming the path, the value and what a
valid value looks like. Scalars are accepted in their string form too, because interpolation
turns `cpus: ${CPUS}` into the string "0.5".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from controller.errors import SpecError
from controller.specs.redact import is_secret_name

# The Engine API stores counts, sizes and durations as signed 64-bit integers.
INT64_MAX = 2**63 - 1

TRUE_STRINGS = frozenset({"true", "yes", "on"})
FALSE_STRINGS = frozenset({"false", "no", "off"})


def describe(value: Any, path: str = "") -> str:
    """Name a value and its YAML type for an error message.

    The value itself is left out when its path or its text names a secret (DB_PASSWORD and
    the like), because the message lands in the `error` column and in the logs.
    """
    kind = {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}
    kind_name = kind.get(type(value), type(value).__name__)
    if is_secret_name(path) or is_secret_name(repr(value)):
        return f"a {kind_name} (value not shown because it may contain a secret)"
    return f"{value!r} ({kind_name})"


def scalar_text(value: Any, path: str) -> str:
    """Convert a string, number or boolean to the string Compose would pass on."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise SpecError(path, f"expected a string, number or boolean, got {describe(value, path)}")


def as_str(value: Any, path: str, *, allow_int: bool = False, allow_empty: bool = False) -> str:
    """Check for a string (or an integer where `allow_int` is set, such as `user: 1000`)."""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise SpecError(path, f"expected a string, got {describe(value, path)}")
    if not value and not allow_empty:
        raise SpecError(path, "expected a non-empty string, got an empty one")
    return value


def as_bool(value: Any, path: str) -> bool:
    """Check for a boolean; the strings true/false, yes/no and on/off count too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in TRUE_STRINGS:
            return True
        if lowered in FALSE_STRINGS:
            return False
    raise SpecError(path, f"expected true or false, got {describe(value)}")


def as_int(value: Any, path: str, *, minimum: int | None = None) -> int:
    """Check for an integer (or its decimal string) not below `minimum`."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip(), 10)
        except ValueError:
            number = None
    if number is None:
        raise SpecError(path, f"expected an integer, got {describe(value)}")
    if minimum is not None and number < minimum:
        raise SpecError(path, f"expected an integer of at least {minimum}, got {number}")
    return check_int64(number, path)


def as_float(value: Any, path: str, *, minimum: float | None = None) -> float:
    """Check for a number (or its string form) not below `minimum`."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise SpecError(path, f"expected a finite number, got {describe(value)}")
    if minimum is not None and number < minimum:
        raise SpecError(path, f"expected a number of at least {minimum}, got {number}")
    return number


def check_int64(number: int, path: str) -> int:
    """Reject an integer that the Engine API's signed 64-bit fields cannot store."""
    if not -INT64_MAX - 1 <= number <= INT64_MAX:
        raise SpecError(path, f"value {number} is too large: the engine stores at most {INT64_MAX}")
    return number


def as_nano_cpus(value: Any, path: str) -> int:
    """Convert a CPU count such as 0.5 or "1.5" to the Engine API's NanoCpus."""
    nano_cpus = as_float(value, path, minimum=0) * 1_000_000_000
    if nano_cpus > INT64_MAX:
        raise SpecError(path, f"{value!r} CPUs is too large: NanoCpus stores at most {INT64_MAX}")
    return int(round(nano_cpus))


def as_mapping(value: Any, path: str, *, hint: str = "") -> Mapping[str, Any]:
    """Check for a mapping; `hint` shows what a valid one looks like."""
    if not isinstance(value, Mapping):
        suffix = f", for example {hint}" if hint else ""
        raise SpecError(path, f"expected a mapping{suffix}; got {describe(value)}")
    return value


def optional_mapping(value: Any, path: str, *, hint: str = "") -> Mapping[str, Any]:
    """Check for a mapping, or null standing for an empty one."""
    return {} if value is None else as_mapping(value, path, hint=hint)


def as_list(value: Any, path: str, *, hint: str = "") -> list[Any]:
    """Check for a list; `hint` shows what a valid one looks like."""
    if not isinstance(value, list):
        suffix = f", for example {hint}" if hint else ""
        raise SpecError(path, f"expected a list{suffix}; got {describe(value)}")
    return value


def as_str_list(value: Any, path: str, *, allow_single: bool = False, allow_int: bool = False) -> list[str]:
    """Check for a list of strings; a single string counts as a one-item list if allowed."""
    if allow_single and isinstance(value, str):
        return [as_str(value, path)]
    items = as_list(value, path, hint='["first", "second"]' if not allow_single else '"one" or ["first", "second"]')
    return [as_str(item, f"{path}[{index}]", allow_int=allow_int) for index, item in enumerate(items)]


def check_keys(mapping: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    """Reject keys of a nested mapping that are not in `allowed`, naming the first one."""
    for key in mapping:
        if key not in allowed:
            raise SpecError(f"{path}.{key}", f"unsupported key; supported keys are: {', '.join(allowed)}")


def list_or_mapping(value: Any, path: str, *, separator: str = "=") -> dict[str, str | None]:
    """Read a Compose "list or map" field (labels, sysctls, environment) into a dict.

    A list contains "NAME=VALUE" strings; an entry without the separator gives value `None`.
    A mapping's values are scalars or null, converted to strings.
    """
    result: dict[str, str | None] = {}
    if isinstance(value, Mapping):
        for name, item in value.items():
            item_path = f"{path}.{name}"
            if not isinstance(name, str) or not name:
                raise SpecError(item_path, f"expected a non-empty string key, got {describe(name)}")
            if separator in name:
                raise SpecError(item_path, f"invalid name {name!r}: a name must not contain {separator!r}")
            result[name] = None if item is None else scalar_text(item, item_path)
        return result

    if isinstance(value, list):
        for index, entry in enumerate(value):
            entry_path = f"{path}[{index}]"
            text = as_str(entry, entry_path)
            name, found, item = text.partition(separator)
            if not name:
                raise SpecError(entry_path, f"invalid entry {text!r}: expected NAME{separator}VALUE")
            result[name] = item if found else None
        return result

    raise SpecError(
        path,
        f'expected a list of "NAME{separator}VALUE" strings or a mapping of names to values, got {describe(value)}',
    )
