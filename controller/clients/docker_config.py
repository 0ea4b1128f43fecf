"""Registry credentials from Docker's `config.json`, as `docker login` writes them.

`auths` maps a registry key to an entry. Keys are a host with an optional port
(`localhost:5002`), optionally with a scheme and path (`https://localhost:5002/v1/`). Docker
Hub's key is `https://index.docker.io/v1/`. An entry contains a base64 `auth` of
`user:password`, or `username` and `password`, and may contain an `identitytoken` (an OAuth2
refresh token).

The registry client (`controller.clients.registry`) calls `load_credentials` when a registry
requests authentication.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from controller.errors import PermanentError

log = structlog.get_logger(__name__)

DOCKER_HUB_DOMAIN = "docker.io"
# Keys under which `docker login` and older clients store Docker Hub credentials.
DOCKER_HUB_KEYS = ("index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """A user name with a password, or an identity token, for one registry."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)

    @property
    def has_password(self) -> bool:
        """Whether the credentials can be sent as HTTP Basic authentication."""
        return self.username is not None and self.password is not None

    def __repr__(self) -> str:
        secrets = []
        if self.password is not None:
            secrets.append("password=***")
        if self.identity_token is not None:
            secrets.append("identity_token=***")
        return f"Credentials(username={self.username!r}, {', '.join(secrets) or 'no secret'})"

    __str__ = __repr__


def default_config_path() -> Path:
    """Locate Docker's config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`."""
    config_dir = os.environ.get("DOCKER_CONFIG")
    if config_dir:
        return Path(config_dir) / "config.json"
    return Path.home() / ".docker" / "config.json"


def load_credentials(path: Path | None, registry: str) -> Credentials | None:
    """Read the credentials stored for `registry` (a reference's registry, e.g. `docker.io`).

    `path` None means Docker's default location. Returns None when the file does not exist or
    has no usable entry for the registry. Raises `PermanentError` naming the file when it is
    not valid JSON or an entry's `auth` cannot be decoded.
    """
    config_path = path if path is not None else default_config_path()
    config = _read_config(config_path)
    if config is None:
        return None

    auths = config.get("auths") or {}
    if not isinstance(auths, dict):
        raise PermanentError(
            f"invalid Docker config {config_path}: 'auths' must be an object keyed by registry; "
            "run `docker login` again or fix the file"
        )

    key, entry = _find_entry(auths, registry)
    if entry is not None:
        credentials = _parse_entry(entry, config_path=config_path, key=key)
        if credentials is not None:
            return credentials

    # NOTE: credential helpers (`credsStore`, `credHelpers`) run external programs and are not
    # supported, so a registry that relies on one is accessed without credentials.
    helpers = config.get("credHelpers") or {}
    if config.get("credsStore") or (isinstance(helpers, dict) and _matching_key(helpers, registry)):
        log.warning(
            "docker_config.credential_helper_unsupported",
            registry=registry,
            config=str(config_path),
            next="requests to this registry go without credentials; store them in 'auths'",
        )
    return None


def _read_config(config_path: Path) -> dict[str, Any] | None:
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise PermanentError(
            f"cannot read Docker config {config_path}: {error.strerror}; check the path and its "
            "permissions"
        ) from None

    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        # Report the position only, because a JSON error message can quote the file's secrets.
        raise PermanentError(
            f"invalid JSON in Docker config {config_path} at line {error.lineno} column "
            f"{error.colno}; fix the file or run `docker login` again"
        ) from None

    if not isinstance(config, dict):
        raise PermanentError(f"invalid Docker config {config_path}: expected a JSON object")
    return config


def _registry_host(key: str) -> str:
    """Reduce an `auths` key to host[:port], as Docker does: drop the scheme and any path."""
    for scheme in ("https://", "http://"):
        if key.startswith(scheme):
            key = key[len(scheme) :]
            break
    return key.split("/", 1)[0]


def _candidate_hosts(registry: str) -> tuple[str, ...]:
    if registry == DOCKER_HUB_DOMAIN or registry in DOCKER_HUB_KEYS:
        return DOCKER_HUB_KEYS
    return (registry,)


def _matching_key(mapping: dict[str, Any], registry: str) -> str | None:
    """Find the key of `mapping` that names `registry`, preferring an exact match."""
    if registry in mapping:
        return registry

    hosts = _candidate_hosts(registry)
    for key in mapping:
        if _registry_host(key) in hosts:
            return key
    return None


def _find_entry(auths: dict[str, Any], registry: str) -> tuple[str | None, dict[str, Any] | None]:
    key = _matching_key(auths, registry)
    if key is None:
        return None, None

    entry = auths[key]
    if not isinstance(entry, dict):
        return key, None
    return key, entry


def _parse_entry(
    entry: dict[str, Any], *, config_path: Path, key: str | None
) -> Credentials | None:
    username = entry.get("username") or None
    password = entry.get("password") or None
    identity_token = entry.get("identitytoken") or None

    encoded = entry.get("auth")
    if encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise PermanentError(
                f"invalid 'auth' value for {key!r} in Docker config {config_path}: expected "
                "base64 of 'user:password'; run `docker login` again"
            ) from None

        user_part, colon, password_part = decoded.partition(":")
        if not colon:
            raise PermanentError(
                f"invalid 'auth' value for {key!r} in Docker config {config_path}: the decoded "
                "value has no ':' between user and password; run `docker login` again"
            )
        username, password = user_part, password_part

    if identity_token is None and (username is None or password is None):
        return None
    return Credentials(username=username, password=password, identity_token=identity_token)
