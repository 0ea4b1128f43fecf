"""Redaction of secret values before they reach logs, CLI renderings and API output.

An environment variable or mapping key is secret when its name contains one of
`SECRET_MARKERS`, compared without regard to case. Registry credentials (`auth`, `password`,
`identitytoken`, `registrytoken`, as Docker's config.json and the Engine API's auth objects
spell them) are always replaced. The functions return copies and never change their input.
"""

from __future__ import annotations

import functools
from typing import Any

SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")
MASK = "***"

# Keys of Docker's auth objects whose values are credentials, compared in lowercase.
CREDENTIAL_KEYS = frozenset({"auth", "password", "identitytoken", "registrytoken"})

# Keys whose value is a list of "NAME=VALUE" environment entries (Engine API `Env`, Compose
# `environment` in list form).
ENV_LIST_KEYS = frozenset({"env", "environment"})


def is_secret_name(name: str) -> bool:
    """Tell whether an environment variable or key name marks a secret value."""
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


# Logs and rows reuse a few dozen keys, so the answer for each is cached. The bound keeps a
# caller that invents keys from growing the cache forever.
@functools.lru_cache(maxsize=4096)
def _maskable_key(key: str) -> bool:
    """Tell whether `redact` may mask the value under a mapping key."""
    lowered = key.lower()
    return is_secret_name(key) or lowered in CREDENTIAL_KEYS or lowered in ENV_LIST_KEYS


def needs_redaction(fields: dict[str, Any]) -> bool:
    """Tell whether `redact` could change a mapping: a nested value or a key it masks under.

    Cheaper than `redact` itself, for the many log events that hold only plain values.
    """
    for key, value in fields.items():
        if isinstance(value, (dict, list, tuple)) or not isinstance(key, str) or _maskable_key(key):
            return True
    return False


def redact_env_entry(entry: str) -> str:
    """Mask the value of one "NAME=VALUE" entry when NAME is a secret name."""
    name, separator, _ = entry.partition("=")
    if separator and is_secret_name(name):
        return f"{name}={MASK}"
    return entry


def redact_env(entries: list[str]) -> list[str]:
    """Mask the values of the secret entries in a list of "NAME=VALUE" strings."""
    return [redact_env_entry(entry) if isinstance(entry, str) else entry for entry in entries]


def redact(value: Any) -> Any:
    """Return a deep copy of dicts, lists and tuples with every secret value masked.

    Masked are: entries of `Env`/`environment` lists whose name is secret, values of mapping
    keys that are secret names (so a Compose `environment` map is covered too), and values of
    registry credential keys. A `None` value stays `None`, so absence remains visible.
    """
    if isinstance(value, dict):
        return {key: _redact_item(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    return value


def _redact_item(key: Any, item: Any) -> Any:
    if not isinstance(key, str) or item is None:
        return redact(item)

    if key.lower() in CREDENTIAL_KEYS:
        return MASK
    if key.lower() in ENV_LIST_KEYS and isinstance(item, list):
        return redact_env(item)
    if is_secret_name(key):
        return MASK
    return redact(item)


def redact_opaque(text: str, *, limit: int = 80) -> str:
    """Quote text that cannot be redacted key by key (say, invalid JSON), for a message.

    Any secret marker in it (PASSWORD and the like) hides all of it; other text is shortened
    to `limit` characters.
    """
    if is_secret_name(text):
        return f"(value of {len(text)} characters not shown because it may contain a secret)"
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def secret_values(env: list[str] | None) -> list[str]:
    """Return the values of the secret entries of an Engine API `Env` list."""
    values = []
    for entry in env or []:
        name, separator, value = entry.partition("=")
        if separator and value and is_secret_name(name):
            values.append(value)
    return values


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of the given secret values in free text (a container's output)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
