"""Compose files: loading one service, variable interpolation, `.env` files and the spec hash.

`load_compose_service` reads a Compose file and interpolates `${VAR}` references from the
given environment and the `.env` file beside the compose file (the environment wins, as in
`docker compose`). It returns one service mapping with the project name and the top-level
network and volume definitions. `controller.specs.compose.plan_service` turns the
result into a `ContainerPlan`. Reading the compose file and `.env` is the only I/O here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.errors import SpecError
from controller.specs.plan import LABEL_SPEC_HASH, ContainerPlan

_NAME_START = re.compile(r"[A-Za-z_]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROJECT_INVALID = re.compile(r"[^a-z0-9_-]")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

# Top-level keys a Compose file may contain besides `x-` extensions. Only `name`, `services`,
# `networks` and `volumes` affect the plan of one service.
TOP_LEVEL_KEYS = ("version", "name", "services", "networks", "volumes", "configs", "secrets")


@dataclass(frozen=True)
class ComposeService:
    """One service of a Compose file, interpolated, with what it needs from the file."""

    mapping: dict[str, Any]
    project: str
    service_name: str
    base_dir: Path
    path: Path
    # Top-level `networks:` and `volumes:` definitions, keyed by their names in the file.
    networks: dict[str, Any] = field(default_factory=dict)
    volumes: dict[str, Any] = field(default_factory=dict)


def load_compose_service(
    path: Path, *, service: str, project: str | None, environ: Mapping[str, str]
) -> ComposeService:
    """Read `path`, interpolate it and return the service named `service`.

    The project name is `project` if given, else `COMPOSE_PROJECT_NAME` from the environment,
    else the file's top-level `name:`, else the name of the file's directory, normalised as
    Compose does. An `environment` entry without a value takes its value from the environment
    and is dropped when the environment does not set it. `network_mode: service:NAME` becomes
    `container:` plus the container name of that service.
    """
    path = Path(path)
    document = _read_yaml(path, field="spec.compose_file")
    if not isinstance(document, dict):
        raise SpecError("spec.compose_file", f"{path} is not a Compose file: its top level must be a mapping with a services key")

    for key in document:
        if not isinstance(key, str) or (key not in TOP_LEVEL_KEYS and not key.startswith("x-")):
            raise SpecError(str(key), f"unsupported top-level key in {path}; supported keys are: {', '.join(TOP_LEVEL_KEYS)}")

    base_dir = path.parent.resolve()
    variables = dict(read_env_file(base_dir / ".env", field="spec.compose_file")) if (base_dir / ".env").is_file() else {}
    variables.update(environ)

    document = interpolate(document, variables, path="")
    services = document.get("services")
    if not isinstance(services, dict) or not services:
        raise SpecError("spec.compose_file", f"{path} defines no services: add a services mapping")
    if service not in services:
        known = ", ".join(sorted(str(name) for name in services))
        raise SpecError("spec.service", f"service {service!r} not found in {path}; its services are: {known}")

    mapping = services[service]
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise SpecError(f"services.{service}", f"must be a mapping of service keys, got {type(mapping).__name__}")
    mapping = dict(mapping)

    project_name = _choose_project_name(project, variables, document.get("name"), base_dir)
    mapping = _resolve_bare_environment(mapping, variables, service=service)
    mapping = _resolve_service_network_mode(mapping, services, project=project_name, service=service)

    networks = _top_level_mapping(document, "networks")
    volumes = _top_level_mapping(document, "volumes")
    return ComposeService(
        mapping=mapping,
        project=project_name,
        service_name=service,
        base_dir=base_dir,
        path=path.resolve(),
        networks=networks,
        volumes=volumes,
    )


def normalize_project_name(name: str) -> str:
    """Normalise a Compose project name: lowercase, only [a-z0-9_-], starting with [a-z0-9]."""
    normalized = _PROJECT_INVALID.sub("", name.lower()).lstrip("_-")
    if not normalized:
        raise SpecError(
            "spec.project",
            f"invalid project name {name!r}: it needs at least one letter or digit; set spec.project",
        )
    return normalized


def default_container_name(project: str, service: str) -> str:
    """Return the name `docker compose` gives the first container of a service."""
    return f"{project}-{service}-1"


# --- interpolation -------------------------------------------------------------------------


def interpolate(value: Any, environ: Mapping[str, str], *, path: str = "") -> Any:
    """Substitute variables in every string of `value`, recursing into mappings and lists.

    Supported: `$$` (a literal `$`), `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
    `${VAR-default}` (unset), `${VAR:?error}` and `${VAR?error}` (raise), `${VAR:+alt}` and
    `${VAR+alt}` (replace when set). Defaults may themselves contain references. An unset
    variable without a default becomes the empty string, as in Compose. A `$` that starts no
    variable stays as it is, but a malformed `${...}` is an error. Mapping keys are not
    interpolated. Errors name the path of the value, for example `services.web.image`.
    """
    if isinstance(value, str):
        return interpolate_string(value, environ, path=path)
    if isinstance(value, dict):
        return {key: interpolate(item, environ, path=_join(path, str(key))) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ, path=f"{path}[{index}]") for index, item in enumerate(value)]
    return value


def interpolate_string(text: str, environ: Mapping[str, str], *, path: str = "") -> str:
    """Substitute the variables in one string; see `interpolate` for the syntax."""
    result, end = _interpolate_until(text, 0, environ, path=path, stop_at_brace=False)
    assert end == len(text)
    return result


def _interpolate_until(
    text: str, position: int, environ: Mapping[str, str], *, path: str, stop_at_brace: bool
) -> tuple[str, int]:
    """Interpolate from `position` to the end, or to the first unmatched `}` if asked.

    Returns the substituted text and the index where scanning stopped (the `}` itself when
    `stop_at_brace` is set).
    """
    output: list[str] = []
    while position < len(text):
        character = text[position]
        if stop_at_brace and character == "}":
            return "".join(output), position
        if character != "$":
            output.append(character)
            position += 1
            continue

        following = text[position + 1 : position + 2]
        if following == "$":
            output.append("$")
            position += 2
        elif following == "{":
            substituted, position = _substitute_braced(text, position, environ, path=path)
            output.append(substituted)
        elif following and _NAME_START.match(following):
            match = _NAME.match(text, position + 1)
            assert match is not None
            output.append(environ.get(match.group(), ""))
            position = match.end()
        else:
            # Like docker compose v2, keep a $ that starts no variable ("$1", a trailing "$").
            output.append("$")
            position += 1

    if stop_at_brace:
        raise SpecError(path or "compose_file", f"invalid interpolation format in {text!r}: missing closing }}")
    return "".join(output), position


def _substitute_braced(text: str, start: int, environ: Mapping[str, str], *, path: str) -> tuple[str, int]:
    """Substitute the `${...}` that starts at `start`; return the text and the index after `}`."""
    invalid = f"invalid interpolation format in {text!r}"
    match = _NAME.match(text, start + 2)
    if match is None:
        raise SpecError(path or "compose_file", f"{invalid}: ${{ must be followed by a variable name")
    name = match.group()
    position = match.end()
    is_set = name in environ
    current = environ.get(name, "")

    if text[position : position + 1] == "}":
        return current, position + 1

    operator = ""
    for candidate in (":-", ":?", ":+", "-", "?", "+"):
        if text.startswith(candidate, position):
            operator = candidate
            break
    if not operator:
        raise SpecError(
            path or "compose_file",
            f"{invalid}: after ${{{name} expected }}, :-, -, :?, ?, :+ or +",
        )

    argument, close = _interpolate_until(text, position + len(operator), environ, path=path, stop_at_brace=True)
    after = close + 1
    present = is_set and (current != "" or not operator.startswith(":"))

    if operator.endswith("-"):
        return (current if present else argument), after
    if operator.endswith("+"):
        return (argument if present else ""), after

    if not present:
        detail = argument or f"variable {name} is required"
        raise SpecError(path or "compose_file", f"required variable {name} is missing a value: {detail}")
    return current, after


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- .env files ----------------------------------------------------------------------------


def read_env_file(path: Path, *, field: str) -> list[tuple[str, str | None]]:
    """Read a Compose `.env` or `env_file` file into (name, value) pairs in file order.

    The syntax: `NAME=VALUE` lines, optionally prefixed by `export `, blank lines and lines
    starting with `#` are skipped. An unquoted value ends at ` #` and is stripped.
    A single-quoted value is literal. A double-quoted value may span lines and understands
    the escapes \\n, \\r, \\t, \\\\ and \\". A line with only `NAME` gives value `None`, meaning
    "take it from the environment".
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(field, f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(field, f"cannot read {path}: {error}") from None
    return parse_env_text(text, source=str(path), field=field)


def parse_env_text(text: str, *, source: str, field: str) -> list[tuple[str, str | None]]:
    """Parse the text of a `.env` file; see `read_env_file` for the syntax."""
    # NOTE: values are not interpolated (Compose substitutes ${VAR} inside env files too);
    # a literal ${VAR} in an env_file value reaches the container unchanged.
    entries: list[tuple[str, str | None]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line_number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()

        name, separator, raw = line.partition("=")
        name = name.strip()
        if not _ENV_KEY.match(name):
            raise SpecError(field, f"{source} line {line_number}: invalid variable name {name!r}; expected NAME=VALUE")
        if not separator:
            entries.append((name, None))
            continue

        raw = raw.lstrip()
        if raw.startswith('"'):
            value, index = _read_double_quoted(raw, lines, index, source=source, line_number=line_number, field=field)
        elif raw.startswith("'"):
            end = raw.find("'", 1)
            if end < 0:
                raise SpecError(field, f"{source} line {line_number}: missing closing ' in the value of {name}")
            value = raw[1:end]
        else:
            value = re.split(r"\s#", raw, maxsplit=1)[0].strip()
        entries.append((name, value))
    return entries


def _read_double_quoted(
    raw: str, lines: list[str], index: int, *, source: str, line_number: int, field: str
) -> tuple[str, int]:
    """Read a double-quoted value that may continue on following lines."""
    escapes = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$"}
    output: list[str] = []
    text = raw[1:]
    while True:
        position = 0
        while position < len(text):
            character = text[position]
            if character == "\\" and position + 1 < len(text):
                following = text[position + 1]
                output.append(escapes.get(following, "\\" + following))
                position += 2
                continue
            if character == '"':
                return "".join(output), index
            output.append(character)
            position += 1
        if index >= len(lines):
            raise SpecError(field, f'{source} line {line_number}: missing closing " in a value')
        output.append("\n")
        text = lines[index]
        index += 1


# --- the spec hash -------------------------------------------------------------------------


def spec_hash(plan: ContainerPlan) -> str:
    """Hash what defines a plan's container: the create body, the extra networks and the image.

    The hash is a sha256 hex digest of canonical JSON (sorted keys), so dict order does not
    change it. The body's own `dockwright.spec-hash` label is left out, so hashing a plan
    that already carries its label returns that label's value.
    """
    body = dict(plan.body)
    labels = dict(body.get("Labels") or {})
    labels.pop(LABEL_SPEC_HASH, None)
    body["Labels"] = labels

    canonical = {
        "image": plan.image,
        "body": body,
        "connect": [asdict(attachment) for attachment in plan.connect],
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


# --- helpers for load_compose_service ------------------------------------------------------


# Larger files are rejected before reading, so a path such as /dev/zero cannot exhaust memory.
MAX_COMPOSE_FILE_BYTES = 4 * 1024 * 1024


def _read_yaml(path: Path, *, field: str) -> Any:
    try:
        if not path.is_file():
            kind = "not found" if not path.exists() else "not a regular file"
            raise SpecError(field, f"compose file {path}: {kind}; name a YAML file")
        size = path.stat().st_size
        if size > MAX_COMPOSE_FILE_BYTES:
            raise SpecError(
                field, f"compose file {path} has {size} bytes, more than the {MAX_COMPOSE_FILE_BYTES} a compose file may have"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(field, f"cannot read compose file {path}: {error}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        # The problem and its position only: the YAML library's excerpt of the line could
        # quote a secret value into the error column.
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise SpecError(field, f"invalid YAML in {path}{where}: {problem}") from None


def _choose_project_name(
    project: str | None, variables: Mapping[str, str], declared: Any, base_dir: Path
) -> str:
    if project:
        return normalize_project_name(project)
    if variables.get("COMPOSE_PROJECT_NAME"):
        return normalize_project_name(variables["COMPOSE_PROJECT_NAME"])
    if declared is not None:
        if not isinstance(declared, str) or not declared:
            raise SpecError("name", f"invalid project name {declared!r}: expected a non-empty string")
        return normalize_project_name(declared)
    return normalize_project_name(base_dir.name)


def _resolve_bare_environment(mapping: dict[str, Any], variables: Mapping[str, str], *, service: str) -> dict[str, Any]:
    """Fill `environment` entries that have no value from the environment, or drop them."""
    environment = mapping.get("environment")
    if isinstance(environment, list):
        resolved_list: list[Any] = []
        for entry in environment:
            if isinstance(entry, str) and "=" not in entry:
                if entry in variables:
                    resolved_list.append(f"{entry}={variables[entry]}")
                continue
            resolved_list.append(entry)
        return {**mapping, "environment": resolved_list}
    if isinstance(environment, dict):
        resolved_map: dict[str, Any] = {}
        for name, value in environment.items():
            if value is None:
                if name in variables:
                    resolved_map[name] = variables[name]
                continue
            resolved_map[name] = value
        return {**mapping, "environment": resolved_map}
    return mapping


def _resolve_service_network_mode(
    mapping: dict[str, Any], services: Mapping[str, Any], *, project: str, service: str
) -> dict[str, Any]:
    """Turn `network_mode: service:NAME` into `container:` plus that service's container name."""
    network_mode = mapping.get("network_mode")
    if not isinstance(network_mode, str) or not network_mode.startswith("service:"):
        return mapping

    target = network_mode[len("service:") :]
    other = services.get(target)
    if not isinstance(other, dict):
        raise SpecError(
            f"services.{service}.network_mode",
            f"{network_mode!r} refers to service {target!r}, which this compose file does not define",
        )
    container = other.get("container_name") or default_container_name(project, target)
    return {**mapping, "network_mode": f"container:{container}"}


def _top_level_mapping(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    section = document.get(key)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise SpecError(key, f"must be a mapping of {key} names to definitions, got {type(section).__name__}")
    return {str(name): (definition if definition is not None else {}) for name, definition in section.items()}
