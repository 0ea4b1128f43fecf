"""Process logging with structlog: JSON off a terminal, readable on one.

Every record has a stable `event` name (`operation.claimed`, `docker.call`, ...), the bound
ids (`operation_id`, `type`, `container`, `step`) and the sentence for humans in `message`.
A redaction processor runs last before rendering, so no secret reaches the output even when a
caller passes one by mistake.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from controller.specs.redact import is_secret_name, redact


# Whether each key seen in an event is a secret name. Events reuse a few dozen keys, so the
# answer is remembered; the bound keeps a caller that invents keys from growing it forever.
_SECRET_KEYS: dict[str, bool] = {}
_SECRET_KEYS_BOUND = 4096


def _is_secret_key(key: str) -> bool:
    known = _SECRET_KEYS.get(key)
    if known is None:
        if len(_SECRET_KEYS) >= _SECRET_KEYS_BOUND:
            _SECRET_KEYS.clear()
        known = _SECRET_KEYS[key] = is_secret_name(key)
    return known


def _redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Most events hold only strings and numbers under plain keys; copying those is skipped.
    for key, value in event_dict.items():
        if isinstance(value, (dict, list, tuple)) or _is_secret_key(key):
            return redact(event_dict)
    return event_dict


def configure_logging(*, log_format: str = "auto", level: str = "INFO") -> None:
    """Configure structlog for the process; safe to call more than once."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("dockwright").bind(**bound)
