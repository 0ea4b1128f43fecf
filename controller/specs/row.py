"""Validate an operation row's columns before any work starts.

Every error names the column (or the option) and the value, and shows what a valid value
looks like, because the row was most likely written by hand or by another service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from controller.errors import SpecError
from controller.specs.redact import redact_opaque

OPERATION_TYPES = ("start", "recreate", "update_image")
PULL_POLICIES = ("missing", "always", "never")

# Options each operation type accepts, with their type and default.
_COMMON_OPTIONS: dict[str, tuple[type, Any]] = {"max_attempts": (int, 5)}
_OPTIONS: dict[str, dict[str, tuple[type, Any]]] = {
    "start": {"pull": (str, "missing"), "replace": (bool, False), "settle_seconds": (float, 0.0)},
    "recreate": {
        "settle_seconds": (float, 5.0),
        "health_timeout": (float, 60.0),
        "recreate_dependents": (bool, True),
        "pull": (str, "always"),
        # Join this container's network namespace instead of the one in the container's
        # `container:` network mode; set on the child rows of a recreate's dependents.
        "network_container": (str, None),
    },
    "update_image": {"recreate": (bool, False)},
}
MAX_ATTEMPTS_LIMIT = 100


@dataclass(frozen=True)
class OperationRequest:
    """The validated columns of an operation row."""

    type: str
    container: str | None
    image: str | None
    spec: dict[str, Any] | None
    options: dict[str, Any] = field(default_factory=dict)


def _parse_json_object(column: str, text: str | None) -> dict[str, Any] | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SpecError(column, f"invalid JSON {_shown(text)}: {exc}; write a JSON object such as {{}}") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(column, f"must be a JSON object, got {type(value).__name__} {_shown(text)}")
    return value


def _shown(text: str) -> str:
    """Quote a column's text for an error message; see `redact_opaque`."""
    return redact_opaque(text)


def _parse_options(kind: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    accepted = {**_COMMON_OPTIONS, **_OPTIONS[kind]}
    options = {name: default for name, (_, default) in accepted.items()}
    for name, value in (raw or {}).items():
        if name not in accepted:
            raise SpecError(
                f"options.{name}",
                f"unknown option for a {kind} operation; accepted options are: {', '.join(sorted(accepted))}",
            )
        expected, _ = accepted[name]
        if expected is bool:
            if not isinstance(value, bool):
                raise SpecError(f"options.{name}", f"must be true or false, got {value!r}")
        elif expected is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(f"options.{name}", f"must be an integer, got {value!r}")
        elif expected is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise SpecError(f"options.{name}", f"must be a non-negative number of seconds, got {value!r}")
            value = float(value)
        elif not isinstance(value, expected):
            raise SpecError(f"options.{name}", f"must be a {expected.__name__}, got {value!r}")
        options[name] = value

    if not 1 <= options["max_attempts"] <= MAX_ATTEMPTS_LIMIT:
        raise SpecError(
            "options.max_attempts", f"must be between 1 and {MAX_ATTEMPTS_LIMIT}, got {options['max_attempts']}"
        )
    if "pull" in options and options["pull"] not in PULL_POLICIES:
        raise SpecError("options.pull", f"must be one of {', '.join(PULL_POLICIES)}, got {options['pull']!r}")
    return options


def parse_request(
    *, type: str | None, container: str | None, image: str | None, spec: str | None, options: str | None
) -> OperationRequest:
    """Validate the columns of a row; raise `SpecError` naming the first bad one."""
    if type not in OPERATION_TYPES:
        raise SpecError("type", f"unknown operation type {type!r}; expected one of {', '.join(OPERATION_TYPES)}")

    parsed_spec = _parse_json_object("spec", spec)
    parsed_options = _parse_options(type, _parse_json_object("options", options))
    # A blank column counts as empty, like NULL.
    container = (container or "").strip() or None
    image = (image or "").strip() or None

    if type == "recreate" and not container:
        raise SpecError("container", "a recreate needs the name of the container to replace")
    if type == "update_image" and not image:
        raise SpecError("image", "an update_image needs the image reference to check, such as localhost:5001/team/app:1")
    if type == "start" and parsed_spec is None and not image:
        raise SpecError("spec", "a start needs an image: set the image column or give a spec with an image")
    if type != "start" and parsed_spec is not None:
        raise SpecError("spec", f"a {type} operation takes no spec; remove it")

    return OperationRequest(type=type, container=container, image=image, spec=parsed_spec, options=parsed_options)
