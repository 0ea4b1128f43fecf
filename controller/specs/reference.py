"""Image reference parsing, as the distribution reference grammar and Docker define it.

A reference is `[DOMAIN/]PATH[:TAG][@DIGEST]`. This module splits it into registry,
repository, tag and digest, applies Docker's normalisation (`nginx` is
`docker.io/library/nginx:latest`, `index.docker.io` is `docker.io`), and validates each part
against the grammar of github.com/distribution/reference:

    domain            host [":" port]      host: domain-component ("." domain-component)*
                                           or "[" IPv6 address "]"
    domain-component  [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
    path              path-component ("/" path-component)*
    path-component    [a-z0-9]+ (separator [a-z0-9]+)*     separator: "." | "_" | "__" | "-"+
    tag               [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest            algorithm ":" hex    algorithm components [A-Za-z][A-Za-z0-9]*
                                           joined by "+", ".", "-" or "_"

The first path segment is a registry domain when it contains "." or ":", is `localhost`, or
contains an uppercase letter. Otherwise the reference is a Docker Hub name. The full name
(`docker.io/library/nginx`) is at most 255 characters. Digests must use an algorithm Docker
supports (sha256, sha384, sha512) with the matching number of lowercase hex digits.

Pure code: no I/O. The registry client (`controller.clients.registry`) consumes `Reference`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from controller.errors import SpecError

DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_LEGACY_DOMAIN = "index.docker.io"
# Docker Hub's registry API is served from this host, not from docker.io itself.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DOCKER_HUB_OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"

NAME_MAX_LENGTH = 255
TAG_MAX_LENGTH = 128

# Hex digits required by each digest algorithm that Docker's digest package accepts.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

EXAMPLES = (
    "a valid reference looks like 'nginx', 'nginx:1.25', 'localhost:5001/team/app:1.2' "
    "or 'ghcr.io/team/app@sha256:<64 hex digits>'"
)

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ALGORITHM_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[+._-][A-Za-z][A-Za-z0-9]*)*")
_HEX_RE = re.compile(r"[a-f0-9]+")
# A bare 64-digit hex string is an image id, which Docker refuses as a repository name.
_IMAGE_ID_RE = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised image reference."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        """Host (and port) that serves the registry HTTP API for this reference."""
        if self.registry == DOCKER_HUB_DOMAIN:
            return DOCKER_HUB_API_HOST
        return self.registry

    @property
    def name(self) -> str:
        """Fully qualified name without tag or digest: `docker.io/library/nginx`."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """Name as Docker shows it: `nginx`, `team/app`, `localhost:5001/team/app`."""
        if self.registry != DOCKER_HUB_DOMAIN:
            return self.name

        namespace, _, rest = self.repository.partition("/")
        if namespace == DOCKER_HUB_OFFICIAL_NAMESPACE and "/" not in rest:
            return rest
        return self.repository

    def familiar(self) -> str:
        """Format the reference as Docker shows it: `nginx:latest`, `localhost:5001/a/b:1.2`."""
        return self.familiar_name + self._suffix()

    def canonical(self) -> str:
        """Format the fully qualified reference: `docker.io/library/nginx:latest`."""
        return self.name + self._suffix()

    def pull_name(self) -> tuple[str, str]:
        """Return the repository and the tag or digest, as `docker pull` and docker-py take them.

        A reference with both a tag and a digest is pulled by digest, as Docker does.
        """
        if self.digest is not None:
            return self.familiar_name, self.digest
        return self.familiar_name, self.tag or DEFAULT_TAG

    def _suffix(self) -> str:
        suffix = ""
        if self.tag is not None:
            suffix += f":{self.tag}"
        if self.digest is not None:
            suffix += f"@{self.digest}"
        return suffix

    def __str__(self) -> str:
        return self.familiar()


def parse_reference(text: str, *, field: str = "image") -> Reference:
    """Parse and normalise an image reference.

    Raises `SpecError(field, ...)` naming the value and the rule it breaks when `text` is not
    a valid reference.
    """
    if not isinstance(text, str) or text == "":
        raise SpecError(field, f"missing image reference; {EXAMPLES}")

    def invalid(reason: str) -> SpecError:
        return SpecError(field, f"invalid image reference {text!r}: {reason}; {EXAMPLES}")

    if text != text.strip() or any(character.isspace() for character in text):
        raise invalid("it contains whitespace")

    if _IMAGE_ID_RE.fullmatch(text):
        raise invalid("a 64-digit hexadecimal string is an image id, not a repository name")

    # The digest follows the first "@". The tag follows the last ":" after the last "/",
    # so the ":" of a registry port is never taken for a tag.
    remainder, at_sign, digest = text.partition("@")
    if at_sign:
        _check_digest(digest, invalid)
    else:
        digest = None

    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        _check_tag(tag, invalid)
    else:
        name, tag = remainder, None

    registry, repository = _split_domain(name, invalid)

    if not repository:
        raise invalid("the repository name is empty")
    if repository.lower() != repository:
        raise invalid(f"repository names must be lowercase, got {repository!r}")
    for component in repository.split("/"):
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise invalid(
                f"invalid repository path component {component!r}: components are lowercase "
                "letters and digits, separated by '.', '_', '__' or '-', and are never empty"
            )

    full_name = f"{registry}/{repository}"
    if len(full_name) > NAME_MAX_LENGTH:
        raise invalid(
            f"the repository name {full_name!r} is {len(full_name)} characters long, "
            f"the maximum is {NAME_MAX_LENGTH}"
        )

    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


def _split_domain(name: str, invalid) -> tuple[str, str]:
    """Split a name into its registry domain and repository path, normalising Docker Hub."""
    first, slash, rest = name.partition("/")
    is_domain = bool(slash) and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    )

    if is_domain:
        if not _DOMAIN_RE.fullmatch(first):
            raise invalid(
                f"invalid registry domain {first!r}: expected a host name, an IPv4 address or "
                "a bracketed IPv6 address, optionally followed by ':PORT'"
            )
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB_DOMAIN, name

    if registry == DOCKER_HUB_LEGACY_DOMAIN:
        registry = DOCKER_HUB_DOMAIN
    if registry == DOCKER_HUB_DOMAIN and repository and "/" not in repository:
        repository = f"{DOCKER_HUB_OFFICIAL_NAMESPACE}/{repository}"
    return registry, repository


def _check_tag(tag: str, invalid) -> None:
    if not tag:
        raise invalid("the tag after ':' is empty")
    if len(tag) > TAG_MAX_LENGTH:
        raise invalid(f"the tag is {len(tag)} characters long, the maximum is {TAG_MAX_LENGTH}")
    if not tag.isascii() or not _TAG_RE.fullmatch(tag):
        raise invalid(
            f"invalid tag {tag!r}: a tag starts with a letter, digit or '_' and contains only "
            "letters, digits, '_', '.' and '-'"
        )


def _check_digest(digest: str, invalid) -> None:
    algorithm, colon, hex_digits = digest.partition(":")
    if not colon or not _ALGORITHM_RE.fullmatch(algorithm) or not hex_digits:
        raise invalid(
            f"invalid digest {digest!r}: expected ALGORITHM:HEX, e.g. sha256:<64 hex digits>"
        )

    expected_length = DIGEST_HEX_LENGTHS.get(algorithm)
    if expected_length is None:
        supported = ", ".join(DIGEST_HEX_LENGTHS)
        raise invalid(f"unsupported digest algorithm {algorithm!r}, supported: {supported}")
    if len(hex_digits) != expected_length or not _HEX_RE.fullmatch(hex_digits):
        raise invalid(
            f"invalid digest {digest!r}: {algorithm} needs exactly {expected_length} "
            "lowercase hex digits"
        )
