"""Registry client: reads manifests over the registry HTTP API (distribution v2 / OCI) with httpx.

The only module that talks to registries. `update_image` uses `resolve` to learn the digest a
tag points to and, for a multi-platform index, the config digest of the engine's platform,
without pulling. Credentials come from `credentials_for` (Docker's config.json, read by
`controller.clients.docker_config`). They and the tokens obtained with them are sent only in
request headers and never appear in logs or exception messages.

Failure rules: a 401 after credentials were sent, or with none to send, raises
`AuthenticationError`, and so does a 403. A 404 or another 4xx raises `PermanentError`. A
429, 5xx, timeout or connection error is retried here with exponential backoff and jitter.
When the retries are used up it is raised as `TransientError` with the registry's
Retry-After, so the reactor can retry the operation later.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx
import structlog

from controller.clients.docker_config import Credentials
from controller.errors import AuthenticationError, PermanentError, TransientError
from controller.specs.reference import Reference

log = structlog.get_logger(__name__)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
ACCEPT_HEADER = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

# BuildKit marks provenance and SBOM entries of an index with this annotation and with
# platform unknown/unknown.
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
ATTESTATION_TYPE = "attestation-manifest"

# distribution rejects manifest uploads above 4 MiB, so a larger response is not a manifest.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
# A longer Retry-After is not slept here: the TransientError carries it to the reactor.
MAX_INLINE_WAIT_SECONDS = 60.0

# The token specification's lifetime for a token response without `expires_in`.
DEFAULT_TOKEN_SECONDS = 60
# Renew a cached token this long before it expires, so it never expires in flight.
TOKEN_RENEW_MARGIN_SECONDS = 5

SUPPORTED_DIGEST_ALGORITHMS = ("sha256", "sha384", "sha512")

OnRequest = Callable[[str, str, int], None]


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Platform:
    """An OS, CPU architecture and optional variant, as in an index entry: `linux/arm64/v8`."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse `OS/ARCH[/VARIANT]`. Raises `PermanentError` on any other shape."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise PermanentError(
                f"invalid platform {text!r}: expected OS/ARCHITECTURE[/VARIANT], e.g. linux/amd64"
            )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def normalized(self) -> Platform:
        """Spell the platform as containerd's matcher does (`aarch64` is `arm64`, variant v8)."""
        architecture = _ARCHITECTURE_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant or _DEFAULT_VARIANTS.get(architecture)
        return Platform(self.os.lower(), architecture, variant)

    def matches(self, other: Platform) -> bool:
        """Check whether an image for `other` runs on this platform.

        A missing variant on either side matches any variant.
        """
        mine, theirs = self.normalized(), other.normalized()
        if (mine.os, mine.architecture) != (theirs.os, theirs.architecture):
            return False
        return mine.variant is None or theirs.variant is None or mine.variant == theirs.variant

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


_ARCHITECTURE_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386"}
# The variant an architecture has when none is given, as containerd's platform matcher assumes.
_DEFAULT_VARIANTS = {"amd64": "v1", "arm64": "v8", "arm": "v7"}


@dataclass(frozen=True)
class ManifestHead:
    """Digest, media type and size in bytes of a manifest, from a HEAD response."""

    digest: str
    media_type: str
    size: int | None


@dataclass(frozen=True)
class Manifest:
    """A fetched manifest or index, with its verified digest and parsed JSON content."""

    digest: str
    media_type: str
    size: int
    content: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def config_digest(self) -> str | None:
        """Digest of the image config blob (the engine's image id); None for an index."""
        config = self.content.get("config")
        if isinstance(config, dict) and isinstance(config.get("digest"), str):
            return config["digest"]
        return None

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The `manifests` descriptors of an index; empty for an image manifest."""
        entries = self.content.get("manifests")
        if not isinstance(entries, list):
            return []
        return [entry for entry in entries if isinstance(entry, dict)]


@dataclass(frozen=True)
class RemoteImage:
    """The registry's current image for a reference, as seen from one platform.

    `digest` is the manifest digest the tag points to (what `RepoDigests` shows after a pull).
    For an index, `platform_digest` is the chosen entry's manifest digest, and None otherwise.
    `config_digest` is the config digest of the chosen image (of the plain manifest, or of the
    index entry), which is the image id the engine gives it after a pull.
    """

    reference: Reference
    digest: str
    media_type: str
    is_index: bool
    platform_digest: str | None
    config_digest: str


@dataclass
class _Token:
    value: str
    expires_at: float


# ---------------------------------------------------------------------------------------------
# Pure helpers


def registry_scheme(api_host: str) -> str:
    """Choose the URL scheme for a registry API host.

    NOTE: `localhost` and loopback addresses (127.0.0.0/8, ::1) use plain http and every other
    registry https. Docker also allows insecure registries configured on the engine, which
    this client does not read.
    """
    if api_host.startswith("["):
        host = api_host[1 : api_host.find("]")]
    else:
        host = api_host.rsplit(":", 1)[0]

    if host == "localhost":
        return "http"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "https"
    return "http" if address.is_loopback else "https"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Convert a Retry-After header (delay in seconds or an HTTP date) into seconds from now."""
    if value is None:
        return None
    value = value.strip()

    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)

    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max(0.0, (moment - current).total_seconds())


# One `name=value` or `name="quoted value"` parameter of a WWW-Authenticate challenge.
_CHALLENGE_PARAM_RE = re.compile(
    r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)\s*,?'
)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split a WWW-Authenticate header into its lowercase scheme and its parameters."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for match in _CHALLENGE_PARAM_RE.finditer(rest):
        quoted = match.group(3)
        if quoted is not None:
            params[match.group(1).lower()] = quoted.replace('\\"', '"')
        else:
            params[match.group(1).lower()] = match.group(2)
    return scheme.lower(), params


def is_attestation(entry: dict[str, Any]) -> bool:
    """Check whether an index entry is an attestation (provenance, SBOM), not a runnable image."""
    annotations = entry.get("annotations") or {}
    if isinstance(annotations, dict):
        if annotations.get(ATTESTATION_ANNOTATION) == ATTESTATION_TYPE:
            return True

    platform = entry.get("platform") or {}
    return platform.get("os") == "unknown" and platform.get("architecture") == "unknown"


def select_platform_entry(
    index: Manifest, platform: Platform, *, reference: Reference
) -> dict[str, Any]:
    """Pick the index entry for `platform`, skipping attestations.

    Raises `PermanentError` naming the platforms the index offers when none matches.
    """
    offered: list[str] = []
    for entry in index.entries:
        if is_attestation(entry) or not isinstance(entry.get("platform"), dict):
            continue

        described = entry["platform"]
        candidate = Platform(
            os=str(described.get("os", "")),
            architecture=str(described.get("architecture", "")),
            variant=described.get("variant"),
        )
        offered.append(str(candidate))
        if platform.matches(candidate) and isinstance(entry.get("digest"), str):
            return entry

    available = ", ".join(offered) or "none"
    raise PermanentError(
        f"no image for platform {platform} in the index of {reference.familiar()} "
        f"({index.digest}); the index offers: {available}"
    )


def verify_digest(expected: str, body: bytes, *, description: str) -> None:
    """Check that `body` hashes to `expected`; raises `PermanentError` when it does not."""
    algorithm, _, expected_hex = expected.partition(":")
    if algorithm not in SUPPORTED_DIGEST_ALGORITHMS:
        raise PermanentError(
            f"unsupported digest algorithm {algorithm!r} in {expected!r} for {description}; "
            f"supported: {', '.join(SUPPORTED_DIGEST_ALGORITHMS)}"
        )

    actual_hex = hashlib.new(algorithm, body).hexdigest()
    if actual_hex != expected_hex:
        raise PermanentError(
            f"digest mismatch for {description}: expected {expected}, the content hashes to "
            f"{algorithm}:{actual_hex}; the registry served corrupt or different content"
        )


def _media_type(response: httpx.Response, content: dict[str, Any] | None) -> str | None:
    header = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
    if header in IMAGE_MANIFEST_TYPES or header in INDEX_TYPES:
        return header
    if content is None:
        return header or None

    # OCI allows manifests without `mediaType`, so the keys distinguish an index from an image.
    declared = content.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in content:
        return OCI_INDEX
    if "config" in content:
        return OCI_MANIFEST
    return header or None


def _registry_error(response: httpx.Response) -> str:
    """Summarise the registry's `errors` body (code and message), if it sent one."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""

    parts = []
    for error in errors[:3]:
        if isinstance(error, dict):
            parts.append(f"{error.get('code', '?')}: {error.get('message', '')}".strip())
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Client


class RegistryClient:
    """Async registry API client with token caching and retries. Close it with `aclose`.

    `on_request(registry, kind, status)` is called after every HTTP exchange for metrics;
    `kind` is "manifest", "token" or "blob", and `status` is 0 when no response arrived
    (timeout or connection error). `sleep` and `clock` exist so tests can run the backoff and
    token expiry without waiting.
    """

    def __init__(
        self,
        *,
        credentials_for: Callable[[str], Credentials | None],
        timeout: float = 10.0,
        max_retries: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: OnRequest | None = None,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials_for = credentials_for
        self._timeout = timeout
        self._max_retries = max_retries
        self._on_request = on_request
        self._sleep = sleep
        self._clock = clock
        # trust_env=False: proxy variables must not redirect registry traffic or its credentials.
        self._http = httpx.AsyncClient(
            timeout=timeout, transport=transport, follow_redirects=True, trust_env=False
        )
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._basic_registries: set[str] = set()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- public operations ------------------------------------------------------------------

    async def head_manifest(self, ref: Reference) -> ManifestHead:
        """Read the digest, media type and size of the manifest a reference points to.

        Falls back to a GET when the registry sends no Docker-Content-Digest header.
        """
        response = await self._manifest_request("HEAD", ref, _target(ref))

        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            manifest = await self.get_manifest(ref)
            return ManifestHead(
                digest=manifest.digest, media_type=manifest.media_type, size=manifest.size
            )

        length = response.headers.get("Content-Length", "")
        size = int(length) if length.isdigit() else None
        media_type = _media_type(response, None) or ""
        return ManifestHead(digest=digest, media_type=media_type, size=size)

    async def get_manifest(self, ref: Reference, digest: str | None = None) -> Manifest:
        """Fetch and verify the manifest for `ref`, or the manifest `digest` in its repository.

        The body must hash to the requested digest or, for a tag, to the registry's
        Docker-Content-Digest header; otherwise `PermanentError` is raised.
        """
        target = digest or _target(ref)
        description = f"the manifest {target} of {ref.name}"
        response = await self._manifest_request("GET", ref, target)

        body = response.content
        if len(body) > MAX_MANIFEST_BYTES:
            raise PermanentError(
                f"{description} is {len(body)} bytes, more than the {MAX_MANIFEST_BYTES} "
                "a manifest may have"
            )

        expected = digest or ref.digest or response.headers.get("Docker-Content-Digest")
        if expected:
            verify_digest(expected, body, description=description)
        else:
            expected = "sha256:" + hashlib.sha256(body).hexdigest()

        try:
            content = json.loads(body)
        except ValueError:
            raise PermanentError(
                f"{description} is not valid JSON, so the registry did not send a manifest"
            ) from None
        if not isinstance(content, dict):
            raise PermanentError(f"{description} is not a JSON object")

        media_type = _media_type(response, content)
        if media_type not in IMAGE_MANIFEST_TYPES and media_type not in INDEX_TYPES:
            raise PermanentError(
                f"{description} has unsupported media type {media_type!r}; supported: Docker v2 "
                "manifest and manifest list, OCI image manifest and image index"
            )
        return Manifest(digest=expected, media_type=media_type, size=len(body), content=content)

    async def resolve(self, ref: Reference, *, platform: Platform) -> RemoteImage:
        """Find the manifest digest of `ref` and the config digest of its image for `platform`.

        For a plain image manifest no further request is made (its platform is not checked,
        which would need the config blob). For an index, the entry for `platform` is fetched.
        """
        top = await self.get_manifest(ref)

        if not top.is_index:
            config_digest = top.config_digest
            if config_digest is None:
                raise PermanentError(
                    f"the manifest {top.digest} of {ref.familiar()} has no config descriptor"
                )
            return RemoteImage(
                reference=ref,
                digest=top.digest,
                media_type=top.media_type,
                is_index=False,
                platform_digest=None,
                config_digest=config_digest,
            )

        entry = select_platform_entry(top, platform, reference=ref)
        image = await self.get_manifest(ref, digest=entry["digest"])
        if image.is_index or image.config_digest is None:
            raise PermanentError(
                f"the {platform} entry {image.digest} of {ref.familiar()} is not an image manifest "
                f"(media type {image.media_type}); nested indexes are not supported"
            )

        return RemoteImage(
            reference=ref,
            digest=top.digest,
            media_type=top.media_type,
            is_index=True,
            platform_digest=image.digest,
            config_digest=image.config_digest,
        )

    # -- authentication ---------------------------------------------------------------------

    async def _manifest_request(self, method: str, ref: Reference, target: str) -> httpx.Response:
        """Send a manifest request, authenticating once on 401, and map error statuses."""
        registry = ref.registry
        scope = f"repository:{ref.repository}:pull"
        base = f"{registry_scheme(ref.api_host)}://{ref.api_host}"
        url = f"{base}/v2/{ref.repository}/manifests/{target}"
        description = f"the manifest {target} of {ref.name}"
        headers = {"Accept": ACCEPT_HEADER}

        authorization = await self._cached_authorization(registry, scope)
        sent_credentials = authorization is not None and authorization.startswith("Basic ")
        response = await self._send(
            method, url, registry=registry, kind="manifest", description=description,
            headers=_with_authorization(headers, authorization),
        )

        if response.status_code == 401:
            challenge = response.headers.get("WWW-Authenticate", "")
            authorization, sent_credentials = await self._authenticate(
                registry,
                scope=scope,
                challenge=challenge,
                already_sent=sent_credentials,
                description=description,
            )
            response = await self._send(
                method, url, registry=registry, kind="manifest", description=description,
                headers=_with_authorization(headers, authorization),
            )
            if response.status_code == 401:
                self._forget(registry, scope)
                raise self._authentication_error(
                    registry, description=description, sent_credentials=sent_credentials
                )

        if response.status_code == 404:
            raise PermanentError(
                f"manifest unknown: {ref.familiar()} ({target}) not found in registry {registry}; "
                "check the repository name and the tag"
            )
        if response.status_code == 403:
            raise AuthenticationError(
                f"registry {registry} denied access to {description}; check that the user in "
                "the docker config file may pull this repository"
            )
        if response.status_code >= 400:
            detail = _registry_error(response)
            raise PermanentError(
                f"registry {registry} rejected the request for {description} with HTTP "
                f"{response.status_code}{': ' + detail if detail else ''}"
            )
        return response

    async def _cached_authorization(self, registry: str, scope: str) -> str | None:
        token = self._tokens.get((registry, scope))
        if token is not None:
            if self._clock() < token.expires_at:
                return f"Bearer {token.value}"
            del self._tokens[(registry, scope)]

        if registry in self._basic_registries:
            credentials = await self._load_credentials(registry)
            if credentials is not None and credentials.has_password:
                return _basic_authorization(credentials)
        return None

    async def _load_credentials(self, registry: str) -> Credentials | None:
        # `credentials_for` usually reads Docker's config file, so it runs off the event loop.
        return await anyio.to_thread.run_sync(self._credentials_for, registry)

    def _forget(self, registry: str, scope: str) -> None:
        self._tokens.pop((registry, scope), None)

    async def _authenticate(
        self, registry: str, *, scope: str, challenge: str, already_sent: bool, description: str
    ) -> tuple[str, bool]:
        """Obtain authorization for a 401 challenge.

        Returns the Authorization header value and whether it carries the user's credentials.
        """
        self._forget(registry, scope)
        scheme, params = parse_challenge(challenge)
        credentials = await self._load_credentials(registry)

        if scheme == "basic":
            if already_sent or credentials is None or not credentials.has_password:
                raise self._authentication_error(
                    registry, description=description, sent_credentials=already_sent
                )
            self._basic_registries.add(registry)
            return _basic_authorization(credentials), True

        if scheme == "bearer":
            realm = params.get("realm", "")
            if not realm.startswith(("https://", "http://")):
                raise PermanentError(
                    f"registry {registry} sent a Bearer challenge without a valid realm URL "
                    f"for {description}"
                )
            token, lifetime = await self._fetch_token(
                registry,
                realm=realm,
                service=params.get("service"),
                scope=params.get("scope", scope),
                credentials=credentials,
                description=description,
            )
            renew_after = max(lifetime - TOKEN_RENEW_MARGIN_SECONDS, 0.0)
            self._tokens[(registry, scope)] = _Token(token, self._clock() + renew_after)
            return f"Bearer {token}", credentials is not None

        raise PermanentError(
            f"registry {registry} requested unsupported authentication scheme "
            f"{scheme or '(none)'!r} for {description}; supported: Basic and Bearer"
        )

    async def _fetch_token(
        self,
        registry: str,
        *,
        realm: str,
        service: str | None,
        scope: str,
        credentials: Credentials | None,
        description: str,
    ) -> tuple[str, float]:
        """Get a Bearer token from the realm; returns the token and its lifetime in seconds."""
        token_description = f"a token for {description}"
        params = {"scope": scope}
        if service:
            params["service"] = service

        if credentials is not None and credentials.identity_token:
            # OAuth2 refresh-token grant, as `docker login` with an identity token does it.
            form = dict(params, grant_type="refresh_token", client_id="dockwright",
                        refresh_token=credentials.identity_token)
            response = await self._send(
                "POST", realm, registry=registry, kind="token", description=token_description,
                data=form,
            )
        else:
            headers = {}
            if credentials is not None and credentials.has_password:
                headers["Authorization"] = _basic_authorization(credentials)
            response = await self._send(
                "GET", realm, registry=registry, kind="token", description=token_description,
                headers=headers, params=params,
            )

        if response.status_code in (401, 403):
            raise self._authentication_error(
                registry, description=description, sent_credentials=credentials is not None
            )
        if response.status_code != 200:
            raise PermanentError(
                f"token request to {realm} for registry {registry} failed with HTTP "
                f"{response.status_code}"
            )

        try:
            body = response.json()
        except ValueError:
            raise PermanentError(
                f"token response from {realm} for registry {registry} is not JSON"
            ) from None
        if not isinstance(body, dict):
            body = {}
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise PermanentError(
                f"token response from {realm} for registry {registry} has no 'token' or "
                "'access_token'"
            )

        expires_in = body.get("expires_in")
        lifetime = float(DEFAULT_TOKEN_SECONDS)
        is_number = isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool)
        if is_number and expires_in > 0:
            lifetime = float(expires_in)
        return value, lifetime

    def _authentication_error(
        self, registry: str, *, description: str, sent_credentials: bool
    ) -> AuthenticationError:
        if sent_credentials:
            return AuthenticationError(
                f"registry {registry} rejected the credentials for {description}; check the "
                f"credentials for {registry} in the docker config file "
                f"(run `docker login {registry}`)"
            )
        return AuthenticationError(
            f"registry {registry} requires authentication for {description} and the docker "
            f"config file has no credentials for it; add them (run `docker login {registry}`)"
        )

    # -- transport with retries -------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        registry: str,
        kind: str,
        description: str,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request, retrying 429, 5xx, timeouts and connection errors with backoff.

        Returns any other response. Raises `TransientError` when the retries are used up or
        the registry requests a wait longer than MAX_INLINE_WAIT_SECONDS.
        """
        attempts = self._max_retries + 1
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                response = await self._http.request(
                    method, url, headers=headers, params=params, data=data
                )
            except httpx.TimeoutException:
                self._report(registry, kind, 0)
                problem = f"timed out after {self._timeout:g} s"
            except httpx.TransportError as error:
                self._report(registry, kind, 0)
                problem = f"could not be reached ({type(error).__name__}: {error})"
            else:
                self._report(registry, kind, response.status_code)
                if response.status_code != 429 and response.status_code < 500:
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                problem = f"returned HTTP {response.status_code}"

            if attempt == attempts - 1:
                break
            if retry_after is not None and retry_after > MAX_INLINE_WAIT_SECONDS:
                break

            delay = self._backoff(attempt, retry_after)
            log.info(
                "registry.retry",
                registry=registry,
                kind=kind,
                problem=problem,
                attempt=attempt + 1,
                next=f"retrying in {delay:.2f} s",
            )
            await self._sleep(delay)

        raise TransientError(
            f"registry {registry} {problem} for {description} after {attempt + 1} requests; "
            "try again later",
            retry_after=retry_after,
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Compute an exponential backoff with jitter, never shorter than the Retry-After."""
        ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _report(self, registry: str, kind: str, status: int) -> None:
        if self._on_request is not None:
            self._on_request(registry, kind, status)


def _target(ref: Reference) -> str:
    """Return the tag or digest a manifest URL names. A digest wins, as Docker pulls by digest."""
    return ref.digest or ref.tag or "latest"


def _with_authorization(headers: dict[str, str], authorization: str | None) -> dict[str, str]:
    if authorization is None:
        return headers
    return {**headers, "Authorization": authorization}


def _basic_authorization(credentials: Credentials) -> str:
    pair = f"{credentials.username or ''}:{credentials.password or ''}".encode("utf-8")
    return "Basic " + base64.b64encode(pair).decode("ascii")
