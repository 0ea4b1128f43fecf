"""Settings: one object built once from a YAML file and `DOCKWRIGHT_*` environment variables.

The file comes from `--config FILE` or `DOCKWRIGHT_CONFIG`; each environment variable
`DOCKWRIGHT_<KEY>` overrides the key of the same name. The settings are passed explicitly to
whatever needs them; nothing reads the environment later.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

ENV_PREFIX = "DOCKWRIGHT_"


class ConfigError(Exception):
    """The configuration file or an environment variable contains an invalid value."""


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    """Controller settings; each field documents its unit and default."""

    # SQLAlchemy URL of the operations database.
    database_url: str = "sqlite:///dockwright.db"
    # Docker endpoint such as `unix:///var/run/docker.sock`; empty means Docker's own
    # environment (DOCKER_HOST and friends).
    docker_host: str | None = None
    # The `host` column value this controller serves.
    host: str = "local"
    # Maximum number of operations carried out at once.
    concurrency: int = 4
    # Seconds between polls of the table when no change notification arrives.
    poll_interval: float = 1.0
    # Seconds without a heartbeat after which an in-progress row counts as stale.
    stale_after: float = 300.0
    # Days that log rows of finished operations are kept.
    log_retention_days: float = 30.0
    # Seconds that running operations get to finish after SIGTERM before they are returned
    # to pending.
    shutdown_grace: float = 30.0
    # Address of the HTTP API, `HOST:PORT`.
    http_bind: str = "127.0.0.1:9321"
    # Bearer token that the HTTP API demands for writes and logs; empty means none.
    api_token: str | None = None
    # Path of Docker's config.json with registry credentials; empty means ~/.docker/config.json.
    docker_config: str | None = None
    # Run database migrations when the daemon starts.
    migrate_on_start: bool = True
    # Seconds between runs of the stale sweep and of the log retention cleanup.
    sweep_interval: float = 60.0
    # Seconds a Docker API request may take before it times out (pulls and stops get longer).
    docker_timeout: float = 60.0
    # Log output: `auto` (JSON unless stderr is a terminal), `json` or `console`.
    log_format: str = "auto"
    # Minimum level of the process log: DEBUG, INFO, WARNING or ERROR.
    log_level: str = "INFO"
    # Identifier written to `claimed_by`; defaults to `HOSTNAME-PID`.
    instance_id: str = field(default_factory=_default_instance_id)

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> "Settings":
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """Return the settings as a mapping that is safe to log (no token, no password)."""
        values = dataclasses.asdict(self)
        if values["api_token"]:
            values["api_token"] = "***"
        values["database_url"] = redact_url(self.database_url)
        return values


def redact_url(url: str) -> str:
    """Hide the password of a URL such as `postgresql://user:pw@db/name`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}"


def _validate(settings: Settings) -> None:
    if settings.concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {settings.concurrency}")
    for name in ("poll_interval", "stale_after", "shutdown_grace", "sweep_interval", "docker_timeout"):
        value = getattr(settings, name)
        if value <= 0:
            raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
    if settings.log_retention_days < 0:
        raise ConfigError(f"log_retention_days must not be negative, got {settings.log_retention_days}")
    if settings.log_format not in ("auto", "json", "console"):
        raise ConfigError(f"log_format must be auto, json or console, got {settings.log_format!r}")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log_level must be DEBUG, INFO, WARNING or ERROR, got {settings.log_level!r}")
    if not settings.host:
        raise ConfigError("host must not be empty")

    bind_host, _ = parse_bind(settings.http_bind)
    if not settings.api_token and not _is_loopback(bind_host):
        raise ConfigError(
            f"http_bind {settings.http_bind!r} is not a loopback address and no api_token is set: "
            "set DOCKWRIGHT_API_TOKEN (or api_token in the config file), "
            "or bind to 127.0.0.1"
        )


def parse_bind(value: str) -> tuple[str, int]:
    """Split `HOST:PORT` (IPv6 hosts in brackets) into host and port."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"http_bind must be HOST:PORT such as 127.0.0.1:9321, got {value!r}")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _coerce(name: str, kind: Any, raw: Any, source: str) -> Any:
    """Convert a YAML or environment value to the field's type.

    An empty value (YAML null, an empty string) returns None, which means "no value" for the
    optional fields and "the default" for the others. YAML lists and mappings, fractional
    or boolean numbers for integer fields, and infinite or NaN seconds raise `ConfigError`.
    """
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    kind_name = str(kind)
    invalid = ConfigError(f"{source}: {name} must be of type {kind_name}, got {raw!r}")
    if isinstance(raw, (dict, list)):
        raise invalid

    if kind_name.startswith("bool"):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise invalid
    if kind_name.startswith(("int", "float")) and isinstance(raw, bool):
        raise invalid
    try:
        if kind_name.startswith("int"):
            if isinstance(raw, float) and not raw.is_integer():
                raise invalid
            return int(raw) if not isinstance(raw, str) else int(raw.strip())
        if kind_name.startswith("float"):
            value = float(raw)
            if not math.isfinite(value):
                raise invalid
            return value
    except ValueError:
        raise invalid from None
    return str(raw)


# Environment variables with the prefix that are not settings but are read elsewhere.
_OTHER_VARIABLES = {f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}FAILPOINT"}


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return `DOCKWRIGHT_*` variables that name no setting, such as a misspelled one."""
    environ = os.environ if environ is None else environ
    known = {f"{ENV_PREFIX}{f.name.upper()}" for f in fields(Settings)} | _OTHER_VARIABLES
    return sorted(name for name in environ if name.startswith(ENV_PREFIX) and name not in known)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from a YAML file, then the environment, then explicit overrides."""
    environ = os.environ if environ is None else environ
    known = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} not found") from None
        except OSError as exc:
            raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(path)!r} must contain a mapping of settings")
        for key, raw in loaded.items():
            if key not in known:
                raise ConfigError(
                    f"config file {str(path)!r}: unknown setting {key!r}; known settings are: "
                    + ", ".join(sorted(known))
                )
            values[key] = _coerce(key, known[key], raw, f"config file {path}")

    for key, kind in known.items():
        env_name = f"{ENV_PREFIX}{key.upper()}"
        if env_name in environ:
            values[key] = _coerce(key, kind, environ[env_name], f"environment variable {env_name}")

    for key, raw in (overrides or {}).items():
        if raw is not None:
            values[key] = _coerce(key, known[key], raw, "command line")

    return Settings(**{k: v for k, v in values.items() if v is not None or k in ("docker_host", "api_token", "docker_config")})
