"""Image reference parsing: normalisation, formatting and every rejection rule."""

from __future__ import annotations

import pytest

from controller.errors import SpecError
from controller.specs.reference import Reference, parse_reference

SHA256 = "sha256:" + "a" * 64
SHA512 = "sha512:" + "0123456789abcdef" * 8


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("team/app", "docker.io", "team/app", "latest", None),
        ("team/sub/app:v2", "docker.io", "team/sub/app", "v2", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("docker.io/library/nginx:1", "docker.io", "library/nginx", "1", None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/team/app:2", "docker.io", "team/app", "2", None),
        # A registry with a port and no tag means tag latest on that registry.
        ("localhost:5001/team/app", "localhost:5001", "team/app", "latest", None),
        ("localhost:5001/team/app:1.2", "localhost:5001", "team/app", "1.2", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("127.0.0.1:5001/app:x", "127.0.0.1:5001", "app", "x", None),
        ("[::1]:5000/app:1", "[::1]:5000", "app", "1", None),
        ("ghcr.io/team/app", "ghcr.io", "team/app", "latest", None),
        ("registry.example.com:443/a/b/c/d:tag", "registry.example.com:443", "a/b/c/d", "tag", None),
        ("my-registry.local/app", "my-registry.local", "app", "latest", None),
        # An uppercase first segment is a domain, as Docker's normaliser decides.
        ("Registry/app", "Registry", "app", "latest", None),
        # Without a "/" the part after ":" is a tag, even when it looks like a port.
        ("localhost:5001", "docker.io", "library/localhost", "5001", None),
        ("localhost", "docker.io", "library/localhost", "latest", None),
        # Separators inside path components.
        ("team/a.b_c__d--e", "docker.io", "team/a.b_c__d--e", "latest", None),
        ("nginx@" + SHA256, "docker.io", "library/nginx", None, SHA256),
        ("nginx:1.25@" + SHA256, "docker.io", "library/nginx", "1.25", SHA256),
        ("localhost:5001/team/app:1@" + SHA256, "localhost:5001", "team/app", "1", SHA256),
        ("localhost:5001/team/app@" + SHA512, "localhost:5001", "team/app", None, SHA512),
        ("app:" + "t" * 128, "docker.io", "library/app", "t" * 128, None),
        ("app:_Tag.With-Upper_9", "docker.io", "library/app", "_Tag.With-Upper_9", None),
    ],
)
def test_parse_valid(text, registry, repository, tag, digest):
    reference = parse_reference(text)

    assert reference.registry == registry
    assert reference.repository == repository
    assert reference.tag == tag
    assert reference.digest == digest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "missing image reference"),
        ("Nginx", "repository names must be lowercase"),
        ("team/App:1", "repository names must be lowercase"),
        ("localhost:5001/Team/app", "repository names must be lowercase"),
        ("nginx:", "the tag after ':' is empty"),
        ("nginx:-bad", "invalid tag '-bad'"),
        ("nginx:.bad", "invalid tag '.bad'"),
        ("nginx:b@d", "invalid digest 'd'"),
        ("nginx:t\u00e9", "invalid tag"),
        ("app:" + "t" * 129, "the tag is 129 characters long, the maximum is 128"),
        ("nginx@sha256:abc", "sha256 needs exactly 64 lowercase hex digits"),
        ("nginx@sha256:" + "A" * 64, "sha256 needs exactly 64 lowercase hex digits"),
        ("nginx@sha256:" + "a" * 65, "sha256 needs exactly 64 lowercase hex digits"),
        ("nginx@md5:" + "a" * 32, "unsupported digest algorithm 'md5'"),
        ("nginx@" + "a" * 64, "invalid digest"),
        ("nginx@", "invalid digest ''"),
        ("nginx@1sha:" + "a" * 64, "invalid digest"),
        ("a" * 64, "image id, not a repository name"),
        ("team//app", "invalid repository path component ''"),
        ("team/app/", "invalid repository path component ''"),
        ("/app", "invalid repository path component ''"),
        ("team/-app", "invalid repository path component '-app'"),
        ("team/app_", "invalid repository path component 'app_'"),
        ("team/a___b", "invalid repository path component 'a___b'"),
        ("team/a..b", "invalid repository path component 'a..b'"),
        ("localhost:5001/", "the repository name is empty"),
        (":tag", "the repository name is empty"),
        ("-bad.example.com/app", "invalid registry domain '-bad.example.com'"),
        ("bad-.example.com/app", "invalid registry domain 'bad-.example.com'"),
        ("example..com/app", "invalid registry domain 'example..com'"),
        ("localhost:port/app", "invalid registry domain 'localhost:port'"),
        ("host_name.com/app", "invalid registry domain 'host_name.com'"),
        (" nginx", "it contains whitespace"),
        ("nginx latest", "it contains whitespace"),
        ("localhost/" + "a" * 246, "is 256 characters long, the maximum is 255"),
    ],
)
def test_parse_invalid(text, expected):
    with pytest.raises(SpecError) as raised:
        parse_reference(text)

    message = str(raised.value)
    assert expected in message
    assert "a valid reference looks like 'nginx'" in message


def test_parse_invalid_names_value_and_field():
    with pytest.raises(SpecError) as raised:
        parse_reference("Team/App", field="spec.image")

    assert raised.value.field == "spec.image"
    assert str(raised.value).startswith("spec.image: invalid image reference 'Team/App'")


def test_parse_name_at_max_length():
    repository = "team/" + "a" * (255 - len("docker.io/team/"))

    reference = parse_reference(repository)

    assert len(reference.name) == 255
    assert reference.repository == repository


def test_parse_name_length_counts_normalised_name():
    """The 255 limit applies to `docker.io/library/NAME`, not to the short form typed."""
    short = "a" * 240

    with pytest.raises(SpecError) as raised:
        parse_reference(short)

    assert "the maximum is 255" in str(raised.value)


def test_parse_rejects_non_string():
    with pytest.raises(SpecError) as raised:
        parse_reference(None)  # type: ignore[arg-type]

    assert "missing image reference" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "familiar", "canonical", "pull_name"),
    [
        ("nginx", "nginx:latest", "docker.io/library/nginx:latest", ("nginx", "latest")),
        ("docker.io/library/nginx:1", "nginx:1", "docker.io/library/nginx:1", ("nginx", "1")),
        ("team/app:2", "team/app:2", "docker.io/team/app:2", ("team/app", "2")),
        ("library/a/b", "library/a/b:latest", "docker.io/library/a/b:latest", ("library/a/b", "latest")),
        (
            "localhost:5001/team/app:1.2",
            "localhost:5001/team/app:1.2",
            "localhost:5001/team/app:1.2",
            ("localhost:5001/team/app", "1.2"),
        ),
        ("nginx@" + SHA256, "nginx@" + SHA256, "docker.io/library/nginx@" + SHA256, ("nginx", SHA256)),
        (
            "ghcr.io/team/app:1@" + SHA256,
            "ghcr.io/team/app:1@" + SHA256,
            "ghcr.io/team/app:1@" + SHA256,
            ("ghcr.io/team/app", SHA256),
        ),
    ],
)
def test_reference_formats(text, familiar, canonical, pull_name):
    reference = parse_reference(text)

    assert reference.familiar() == familiar
    assert str(reference) == familiar
    assert reference.canonical() == canonical
    assert reference.pull_name() == pull_name


@pytest.mark.parametrize(
    ("text", "api_host"),
    [
        ("nginx", "registry-1.docker.io"),
        ("index.docker.io/team/app", "registry-1.docker.io"),
        ("localhost:5001/team/app", "localhost:5001"),
        ("ghcr.io/team/app", "ghcr.io"),
    ],
)
def test_reference_api_host(text, api_host):
    assert parse_reference(text).api_host == api_host


def test_reference_round_trips_through_canonical():
    for text in ["nginx", "localhost:5001/team/app:1.2", "ghcr.io/a/b@" + SHA256, "team/app:x@" + SHA256]:
        reference = parse_reference(text)

        assert parse_reference(reference.canonical()) == reference
        assert parse_reference(reference.familiar()) == reference


def test_reference_is_frozen_value():
    reference = parse_reference("nginx")

    assert reference == Reference("docker.io", "library/nginx", "latest", None)
    assert hash(reference) == hash(Reference("docker.io", "library/nginx", "latest", None))
    with pytest.raises(AttributeError):
        reference.tag = "other"  # type: ignore[misc]
