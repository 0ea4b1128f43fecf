"""Registry client against an in-process fake registry (httpx.MockTransport).

The real registries on 127.0.0.1 cover the normal paths in tests/integration. This fake
produces what they cannot on demand: Bearer tokens and their expiry, 429 and 5xx with
Retry-After, timeouts and corrupt content. No request leaves the process.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from controller.clients.docker_config import Credentials
from controller.clients.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    MAX_INLINE_WAIT_SECONDS,
    Platform,
    RegistryClient,
    parse_challenge,
    parse_retry_after,
    registry_scheme,
)
from controller.errors import AuthenticationError, PermanentError, TransientError
from controller.specs.reference import parse_reference

pytestmark = pytest.mark.anyio

PASSWORD = "fake-registry-password"
TOKEN_PREFIX = "secret-token-"
AMD64 = Platform("linux", "amd64")


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def encode(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True).encode()


def image_manifest(config_text: str, media_type: str = DOCKER_MANIFEST) -> bytes:
    config = config_text.encode()
    return encode(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [],
        }
    )


def config_digest_of(manifest: bytes) -> str:
    return json.loads(manifest)["config"]["digest"]


def index(entries: list[tuple[bytes, dict, dict | None]], media_type: str = OCI_INDEX) -> bytes:
    manifests = []
    for body, platform, annotations in entries:
        descriptor = {
            "mediaType": OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST,
            "digest": digest_of(body),
            "size": len(body),
            "platform": platform,
        }
        if annotations:
            descriptor["annotations"] = annotations
        manifests.append(descriptor)
    return encode({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})


class FakeRegistry:
    """A minimal registry: manifests by repository and tag or digest, optional auth, scripted faults."""

    def __init__(self, *, auth: str | None = None, token_expires_in: int | None = 300) -> None:
        self.auth = auth
        self.token_expires_in = token_expires_in
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.faults: list[httpx.Response | Exception] = []
        self.requests: list[httpx.Request] = []
        self.tokens_issued: list[str] = []
        self.valid_tokens: set[str] = set()
        self.token_key = "token"
        self.omit_digest_header = False
        self.content_type_override: str | None = None
        self.tamper = False

    def put(self, repository: str, tag: str | None, media_type: str, body: bytes) -> str:
        digest = digest_of(body)
        self.manifests[(repository, digest)] = (media_type, body)
        if tag:
            self.manifests[(repository, tag)] = (media_type, body)
        return digest

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault

        if request.url.path == "/token":
            return self._token(request)

        denied = self._check_auth(request)
        if denied is not None:
            return denied

        _, _, repository_and_target = request.url.path.partition("/v2/")
        repository, _, target = repository_and_target.rpartition("/manifests/")
        stored = self.manifests.get((repository, target))
        if stored is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})

        media_type, body = stored
        headers = {
            "Content-Type": self.content_type_override or media_type,
            "Content-Length": str(len(body)),
        }
        if not self.omit_digest_header:
            headers["Docker-Content-Digest"] = digest_of(body)
        if self.tamper:
            body = body + b" "
        content = b"" if request.method == "HEAD" else body
        return httpx.Response(200, headers=headers, content=content)

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        authorization = request.headers.get("Authorization", "")
        if self.auth == "basic":
            if authorization == basic_header("dockwright", PASSWORD):
                return None
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="fake"'})

        if self.auth == "bearer":
            if authorization.startswith("Bearer ") and authorization[7:] in self.valid_tokens:
                return None
            repository = request.url.path.split("/v2/")[1].split("/manifests/")[0]
            challenge = (
                'Bearer realm="https://auth.fake.test/token",service="fake.test",'
                f'scope="repository:{repository}:pull"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return None

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != basic_header("dockwright", PASSWORD):
            return httpx.Response(401, json={"details": "incorrect username or password"})

        token = f"{TOKEN_PREFIX}{len(self.tokens_issued)}"
        self.tokens_issued.append(token)
        self.valid_tokens.add(token)
        body: dict[str, object] = {self.token_key: token}
        if self.token_expires_in is not None:
            body["expires_in"] = self.token_expires_in
        return httpx.Response(200, json=body)

    def paths(self) -> list[str]:
        return [request.url.path for request in self.requests]


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Recorder:
    """Collects on_request calls, sleeps and a settable clock."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.sleeps: list[float] = []
        self.now = 1000.0

    def on_request(self, registry: str, kind: str, status: int) -> None:
        self.calls.append((registry, kind, status))

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def kinds(self, kind: str) -> list[int]:
        return [status for _, call_kind, status in self.calls if call_kind == kind]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def make_client(fake: FakeRegistry, recorder: Recorder, credentials: Credentials | None = None, **kwargs) -> RegistryClient:
    return RegistryClient(
        credentials_for=lambda registry: credentials,
        transport=httpx.MockTransport(fake.handle),
        on_request=recorder.on_request,
        sleep=recorder.sleep,
        clock=recorder.clock,
        **kwargs,
    )


GOOD = Credentials(username="dockwright", password=PASSWORD)
BAD = Credentials(username="dockwright", password="wrong-password")


# -- manifests ---------------------------------------------------------------------------------


async def test_head_manifest_reads_headers(recorder):
    fake = FakeRegistry()
    body = image_manifest("one")
    digest = fake.put("library/nginx", "latest", DOCKER_MANIFEST, body)

    async with make_client(fake, recorder) as client:
        head = await client.head_manifest(parse_reference("nginx"))

    assert head.digest == digest
    assert head.media_type == DOCKER_MANIFEST
    assert head.size == len(body)
    assert str(fake.requests[0].url) == "https://registry-1.docker.io/v2/library/nginx/manifests/latest"
    assert fake.requests[0].method == "HEAD"


async def test_head_manifest_without_digest_header_falls_back(recorder):
    fake = FakeRegistry()
    fake.omit_digest_header = True
    body = image_manifest("one")
    fake.put("team/app", "1", DOCKER_MANIFEST, body)

    async with make_client(fake, recorder) as client:
        head = await client.head_manifest(parse_reference("localhost:5001/team/app:1"))

    assert head.digest == digest_of(body)
    assert [request.method for request in fake.requests] == ["HEAD", "GET"]


async def test_manifest_accept_header_lists_all_types(recorder):
    fake = FakeRegistry()
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))

    async with make_client(fake, recorder) as client:
        await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    accept = fake.requests[0].headers["Accept"]
    for media_type in (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX):
        assert media_type in accept
    assert str(fake.requests[0].url).startswith("http://localhost:5001/v2/team/app/")


async def test_get_manifest_rejects_corrupt_body(recorder):
    fake = FakeRegistry()
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    fake.tamper = True

    async with make_client(fake, recorder) as client:
        with pytest.raises(PermanentError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert "digest mismatch" in str(raised.value)


async def test_get_manifest_by_digest_verifies_body(recorder):
    fake = FakeRegistry()
    body = image_manifest("one")
    digest = fake.put("team/app", None, DOCKER_MANIFEST, body)
    fake.omit_digest_header = True

    async with make_client(fake, recorder) as client:
        manifest = await client.get_manifest(parse_reference("localhost:5001/team/app"), digest=digest)
        fake.tamper = True
        with pytest.raises(PermanentError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app"), digest=digest)

    assert manifest.digest == digest
    assert manifest.config_digest == config_digest_of(body)
    assert f"expected {digest}" in str(raised.value)


async def test_get_manifest_media_type_from_body(recorder):
    fake = FakeRegistry()
    fake.put("team/app", "1", OCI_MANIFEST, image_manifest("one", media_type=OCI_MANIFEST))
    fake.content_type_override = "application/json"

    async with make_client(fake, recorder) as client:
        manifest = await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert manifest.media_type == OCI_MANIFEST


async def test_get_manifest_rejects_schema1(recorder):
    fake = FakeRegistry()
    schema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    fake.put("team/app", "1", schema1, encode({"schemaVersion": 1, "mediaType": schema1}))

    async with make_client(fake, recorder) as client:
        with pytest.raises(PermanentError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert "unsupported media type" in str(raised.value)
    assert schema1 in str(raised.value)


async def test_unknown_tag_is_permanent(recorder):
    fake = FakeRegistry()

    async with make_client(fake, recorder) as client:
        with pytest.raises(PermanentError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:9"))

    message = str(raised.value)
    assert message.startswith("manifest unknown")
    assert "localhost:5001/team/app:9" in message
    assert not isinstance(raised.value, TransientError)


async def test_other_client_error_is_permanent(recorder):
    fake = FakeRegistry()
    fake.faults.append(httpx.Response(400, json={"errors": [{"code": "NAME_INVALID", "message": "bad name"}]}))

    async with make_client(fake, recorder) as client:
        with pytest.raises(PermanentError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert "HTTP 400" in str(raised.value)
    assert "NAME_INVALID: bad name" in str(raised.value)


# -- resolve -----------------------------------------------------------------------------------


async def test_resolve_plain_manifest_one_request(recorder):
    fake = FakeRegistry()
    body = image_manifest("plain")
    digest = fake.put("team/app", "1", DOCKER_MANIFEST, body)

    async with make_client(fake, recorder) as client:
        image = await client.resolve(parse_reference("localhost:5001/team/app:1"), platform=AMD64)

    assert image.digest == digest
    assert image.is_index is False
    assert image.platform_digest is None
    assert image.config_digest == config_digest_of(body)
    assert recorder.kinds("manifest") == [200]
    assert recorder.kinds("blob") == []


@pytest.mark.parametrize("index_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
async def test_resolve_index_picks_platform(recorder, index_type):
    fake = FakeRegistry()
    attestation = image_manifest("attestation", media_type=OCI_MANIFEST)
    arm = image_manifest("arm64")
    amd = image_manifest("amd64")
    for body in (attestation, arm, amd):
        fake.put("team/app", None, DOCKER_MANIFEST, body)
    top = index(
        [
            (attestation, {"os": "unknown", "architecture": "unknown"},
             {"vnd.docker.reference.type": "attestation-manifest"}),
            (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}, None),
            (amd, {"os": "linux", "architecture": "amd64"}, None),
        ],
        media_type=index_type,
    )
    top_digest = fake.put("team/app", "1", index_type, top)
    reference = parse_reference("localhost:5001/team/app:1")

    async with make_client(fake, recorder) as client:
        on_amd = await client.resolve(reference, platform=AMD64)
        on_arm = await client.resolve(reference, platform=Platform("linux", "arm64"))
        on_aarch = await client.resolve(reference, platform=Platform("linux", "aarch64", "v8"))

    assert on_amd.digest == top_digest
    assert on_amd.is_index is True
    assert on_amd.media_type == index_type
    assert on_amd.platform_digest == digest_of(amd)
    assert on_amd.config_digest == config_digest_of(amd)
    assert on_arm.config_digest == config_digest_of(arm)
    assert on_aarch.config_digest == config_digest_of(arm)
    assert recorder.kinds("blob") == []


async def test_resolve_skips_annotated_attestation(recorder):
    """An attestation marked only by its annotation is skipped even with a real platform."""
    fake = FakeRegistry()
    attestation = image_manifest("attestation")
    amd = image_manifest("amd64")
    fake.put("team/app", None, DOCKER_MANIFEST, attestation)
    fake.put("team/app", None, DOCKER_MANIFEST, amd)
    top = index(
        [
            (attestation, {"os": "linux", "architecture": "amd64"},
             {"vnd.docker.reference.type": "attestation-manifest"}),
            (amd, {"os": "linux", "architecture": "amd64"}, None),
        ]
    )
    fake.put("team/app", "1", OCI_INDEX, top)

    async with make_client(fake, recorder) as client:
        image = await client.resolve(parse_reference("localhost:5001/team/app:1"), platform=AMD64)

    assert image.config_digest == config_digest_of(amd)


async def test_resolve_index_without_platform(recorder):
    fake = FakeRegistry()
    arm = image_manifest("arm64")
    attestation = image_manifest("attestation")
    top = index(
        [
            (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}, None),
            (attestation, {"os": "unknown", "architecture": "unknown"}, None),
        ]
    )
    fake.put("team/app", "1", OCI_INDEX, top)

    async with make_client(fake, recorder) as client:
        with pytest.raises(PermanentError) as raised:
            await client.resolve(parse_reference("localhost:5001/team/app:1"), platform=AMD64)

    message = str(raised.value)
    assert "no image for platform linux/amd64" in message
    assert "offers: linux/arm64/v8" in message
    assert "unknown" not in message


# -- authentication ----------------------------------------------------------------------------


async def test_basic_auth_retries_with_credentials(recorder):
    fake = FakeRegistry(auth="basic")
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    reference = parse_reference("localhost:5002/team/app:1")

    async with make_client(fake, recorder, GOOD) as client:
        first = await client.get_manifest(reference)
        second = await client.head_manifest(reference)

    assert second.digest == first.digest
    # The 401 happens once; afterwards Basic credentials are sent up front.
    assert recorder.kinds("manifest") == [401, 200, 200]


async def test_basic_auth_wrong_credentials(recorder):
    fake = FakeRegistry(auth="basic")
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))

    async with make_client(fake, recorder, BAD) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.get_manifest(parse_reference("localhost:5002/team/app:1"))

    message = str(raised.value)
    assert "registry localhost:5002 rejected the credentials" in message
    assert "docker config file" in message
    assert "wrong-password" not in message


async def test_basic_auth_without_credentials(recorder):
    fake = FakeRegistry(auth="basic")
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))

    async with make_client(fake, recorder, None) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.get_manifest(parse_reference("localhost:5002/team/app:1"))

    assert "has no credentials for it" in str(raised.value)
    assert recorder.kinds("manifest") == [401]


async def test_bearer_token_fetched_and_cached(recorder):
    fake = FakeRegistry(auth="bearer")
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    reference = parse_reference("registry.fake.test/team/app:1")

    async with make_client(fake, recorder, GOOD) as client:
        await client.get_manifest(reference)
        await client.get_manifest(reference)

    token_request = next(request for request in fake.requests if request.url.path == "/token")
    assert token_request.url.params["scope"] == "repository:team/app:pull"
    assert token_request.url.params["service"] == "fake.test"
    assert token_request.headers["Authorization"] == basic_header("dockwright", PASSWORD)
    assert fake.tokens_issued == [f"{TOKEN_PREFIX}0"]
    assert recorder.kinds("token") == [200]
    assert recorder.kinds("manifest") == [401, 200, 200]


async def test_bearer_access_token_key(recorder):
    fake = FakeRegistry(auth="bearer")
    fake.token_key = "access_token"
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))

    async with make_client(fake, recorder, GOOD) as client:
        manifest = await client.get_manifest(parse_reference("registry.fake.test/team/app:1"))

    assert manifest.media_type == DOCKER_MANIFEST


async def test_bearer_token_renewed_after_expiry(recorder):
    fake = FakeRegistry(auth="bearer", token_expires_in=60)
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    reference = parse_reference("registry.fake.test/team/app:1")

    async with make_client(fake, recorder, GOOD) as client:
        await client.get_manifest(reference)
        recorder.now += 30
        await client.get_manifest(reference)
        recorder.now += 30
        await client.get_manifest(reference)

    # The second request reuses the token; by the third it is within the renewal margin.
    assert len(fake.tokens_issued) == 2
    assert recorder.kinds("manifest") == [401, 200, 200, 401, 200]


async def test_bearer_token_default_lifetime(recorder):
    fake = FakeRegistry(auth="bearer", token_expires_in=None)
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    reference = parse_reference("registry.fake.test/team/app:1")

    async with make_client(fake, recorder, GOOD) as client:
        await client.get_manifest(reference)
        recorder.now += 50
        await client.get_manifest(reference)
        recorder.now += 10
        await client.get_manifest(reference)

    assert len(fake.tokens_issued) == 2


async def test_bearer_revoked_token_refetched(recorder):
    fake = FakeRegistry(auth="bearer")
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    reference = parse_reference("registry.fake.test/team/app:1")

    async with make_client(fake, recorder, GOOD) as client:
        await client.get_manifest(reference)
        fake.valid_tokens.clear()
        await client.get_manifest(reference)

    assert len(fake.tokens_issued) == 2


async def test_bearer_wrong_credentials(recorder):
    fake = FakeRegistry(auth="bearer")
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))

    async with make_client(fake, recorder, BAD) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.resolve(parse_reference("registry.fake.test/team/app:1"), platform=AMD64)

    message = str(raised.value)
    assert "registry registry.fake.test rejected the credentials" in message
    assert "wrong-password" not in message
    assert recorder.kinds("token") == [401]


async def test_bearer_without_credentials(recorder):
    fake = FakeRegistry(auth="bearer")
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))

    async with make_client(fake, recorder, None) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.get_manifest(parse_reference("registry.fake.test/team/app:1"))

    assert "has no credentials for it" in str(raised.value)


async def test_anonymous_bearer_token_succeeds(recorder):
    """Public repositories hand out tokens without credentials, as Docker Hub does."""
    fake = FakeRegistry(auth="bearer")
    fake.put("library/nginx", "latest", DOCKER_MANIFEST, image_manifest("one"))
    fake._token = lambda request: httpx.Response(200, json={"token": "anonymous-token"})  # type: ignore[method-assign]
    fake.valid_tokens.add("anonymous-token")

    async with make_client(fake, recorder, None) as client:
        manifest = await client.get_manifest(parse_reference("nginx"))

    token_request = next(request for request in fake.requests if request.url.path == "/token")
    assert manifest.media_type == DOCKER_MANIFEST
    assert "Authorization" not in token_request.headers
    assert token_request.url.params["scope"] == "repository:library/nginx:pull"


async def test_unsupported_auth_scheme(recorder):
    fake = FakeRegistry()
    fake.faults.append(httpx.Response(401, headers={"WWW-Authenticate": 'Negotiate realm="x"'}))

    async with make_client(fake, recorder, GOOD) as client:
        with pytest.raises(PermanentError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert "unsupported authentication scheme 'negotiate'" in str(raised.value)


async def test_forbidden_is_authentication_error(recorder):
    fake = FakeRegistry()
    fake.faults.append(httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "denied"}]}))

    async with make_client(fake, recorder, GOOD) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert "denied access" in str(raised.value)


# -- retries -----------------------------------------------------------------------------------


async def test_server_error_retried_then_succeeds(recorder):
    fake = FakeRegistry()
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    fake.faults += [httpx.Response(503), httpx.Response(502)]

    async with make_client(fake, recorder) as client:
        manifest = await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert manifest.media_type == DOCKER_MANIFEST
    assert recorder.kinds("manifest") == [503, 502, 200]
    assert len(recorder.sleeps) == 2
    # Exponential backoff with jitter: the first wait is in [0.25, 0.5], the second in [0.5, 1].
    assert 0.25 <= recorder.sleeps[0] <= 0.5
    assert 0.5 <= recorder.sleeps[1] <= 1.0


async def test_retry_after_seconds_honoured(recorder):
    fake = FakeRegistry()
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    fake.faults.append(httpx.Response(429, headers={"Retry-After": "7"}))

    async with make_client(fake, recorder) as client:
        await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert recorder.sleeps == [7.0]


async def test_retry_after_http_date_honoured(recorder):
    fake = FakeRegistry()
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    when = datetime.now(timezone.utc) + timedelta(seconds=20)
    fake.faults.append(httpx.Response(503, headers={"Retry-After": format_datetime(when, usegmt=True)}))

    async with make_client(fake, recorder) as client:
        await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert len(recorder.sleeps) == 1
    assert 17 <= recorder.sleeps[0] <= 20


async def test_retries_exhausted_raise_transient(recorder):
    fake = FakeRegistry()
    fake.faults += [httpx.Response(503, headers={"Retry-After": "2"}) for _ in range(3)]

    async with make_client(fake, recorder, max_retries=2) as client:
        with pytest.raises(TransientError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert raised.value.retry_after == 2.0
    assert "returned HTTP 503" in str(raised.value)
    assert "after 3 requests" in str(raised.value)
    assert recorder.kinds("manifest") == [503, 503, 503]
    assert len(recorder.sleeps) == 2


async def test_long_retry_after_not_slept(recorder):
    fake = FakeRegistry()
    fake.faults.append(httpx.Response(429, headers={"Retry-After": str(int(MAX_INLINE_WAIT_SECONDS) + 60)}))

    async with make_client(fake, recorder) as client:
        with pytest.raises(TransientError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert raised.value.retry_after == MAX_INLINE_WAIT_SECONDS + 60
    assert recorder.sleeps == []


async def test_timeout_retried_and_reported(recorder):
    fake = FakeRegistry()
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    fake.faults.append(httpx.ReadTimeout("read timed out"))

    async with make_client(fake, recorder) as client:
        manifest = await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert manifest.media_type == DOCKER_MANIFEST
    assert recorder.kinds("manifest") == [0, 200]


async def test_connection_errors_exhausted(recorder):
    fake = FakeRegistry()
    fake.faults += [httpx.ConnectError("connection refused") for _ in range(5)]

    async with make_client(fake, recorder, timeout=3.0) as client:
        with pytest.raises(TransientError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert "could not be reached" in str(raised.value)
    assert "after 5 requests" in str(raised.value)
    assert raised.value.retry_after is None
    assert len(recorder.sleeps) == 4


async def test_timeouts_exhausted_message(recorder):
    fake = FakeRegistry()
    fake.faults += [httpx.ConnectTimeout("timed out") for _ in range(2)]

    async with make_client(fake, recorder, timeout=3.0, max_retries=1) as client:
        with pytest.raises(TransientError) as raised:
            await client.get_manifest(parse_reference("localhost:5001/team/app:1"))

    assert "timed out after 3 s" in str(raised.value)


async def test_token_endpoint_server_error_retried(recorder):
    fake = FakeRegistry(auth="bearer")
    fake.put("team/app", "1", DOCKER_MANIFEST, image_manifest("one"))
    reference = parse_reference("registry.fake.test/team/app:1")
    original = fake.handle
    failures = [httpx.Response(500)]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token" and failures:
            fake.requests.append(request)
            return failures.pop()
        return original(request)

    client = RegistryClient(
        credentials_for=lambda registry: GOOD,
        transport=httpx.MockTransport(handle),
        on_request=recorder.on_request,
        sleep=recorder.sleep,
        clock=recorder.clock,
    )
    async with client:
        await client.get_manifest(reference)

    assert recorder.kinds("token") == [500, 200]


# -- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_host", "scheme"),
    [
        ("localhost:5001", "http"),
        ("localhost", "http"),
        ("127.0.0.1:5002", "http"),
        ("127.1.2.3", "http"),
        ("[::1]:5000", "http"),
        ("registry-1.docker.io", "https"),
        ("ghcr.io", "https"),
        ("10.0.0.5:5000", "https"),
        ("localhost.example.com:5000", "https"),
    ],
)
def test_registry_scheme(api_host, scheme):
    assert registry_scheme(api_host) == scheme


def test_parse_challenge_bearer():
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push",error="insufficient_scope"'
    )

    assert scheme == "bearer"
    assert params["realm"] == "https://auth.example/token"
    assert params["service"] == "registry.example"
    assert params["scope"] == "repository:a/b:pull,push"
    assert params["error"] == "insufficient_scope"


def test_parse_challenge_basic():
    scheme, params = parse_challenge('Basic realm="dockwright-test"')

    assert scheme == "basic"
    assert params == {"realm": "dockwright-test"}


def test_parse_retry_after_forms():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)

    assert parse_retry_after("5", now=now) == 5.0
    assert parse_retry_after("1.5", now=now) == 1.5
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


@pytest.mark.parametrize(
    ("wanted", "offered", "expected"),
    [
        (Platform("linux", "arm64"), Platform("linux", "arm64", "v8"), True),
        (Platform("linux", "arm64", "v8"), Platform("linux", "arm64"), True),
        (Platform("linux", "aarch64"), Platform("linux", "arm64"), True),
        (Platform("linux", "x86_64"), Platform("linux", "amd64"), True),
        (Platform("linux", "amd64"), Platform("linux", "amd64", "v3"), False),
        (Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"), False),
        (Platform("linux", "arm"), Platform("linux", "arm", "v7"), True),
        (Platform("linux", "riscv64"), Platform("linux", "riscv64", "rva22"), True),
        (Platform("linux", "amd64"), Platform("windows", "amd64"), False),
        (Platform("linux", "amd64"), Platform("linux", "arm64"), False),
    ],
)
def test_platform_matches(wanted, offered, expected):
    assert wanted.matches(offered) is expected


def test_platform_parse():
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert Platform.parse("linux/amd64") == Platform("linux", "amd64")
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"
    with pytest.raises(PermanentError):
        Platform.parse("linux")
    with pytest.raises(PermanentError):
        Platform.parse("linux//v8")
