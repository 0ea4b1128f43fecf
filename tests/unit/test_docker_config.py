"""Credentials from Docker's config.json: key forms, entry forms and secrecy."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from controller.clients.docker_config import Credentials, default_config_path, load_credentials
from controller.errors import PermanentError

PASSWORD = "s3cret-value"


def write_config(tmp_path: Path, config: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "key",
    ["localhost:5002", "https://localhost:5002", "http://localhost:5002", "https://localhost:5002/v1/"],
)
def test_load_auth_for_key_forms(tmp_path, key):
    path = write_config(tmp_path, {"auths": {key: {"auth": basic("dockwright", PASSWORD)}}})

    credentials = load_credentials(path, "localhost:5002")

    assert credentials is not None
    assert credentials.username == "dockwright"
    assert credentials.password == PASSWORD
    assert credentials.identity_token is None


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
)
def test_load_docker_hub_keys(tmp_path, key):
    path = write_config(tmp_path, {"auths": {key: {"auth": basic("hubuser", PASSWORD)}}})

    credentials = load_credentials(path, "docker.io")

    assert credentials is not None
    assert credentials.username == "hubuser"


def test_load_prefers_exact_key(tmp_path):
    path = write_config(
        tmp_path,
        {
            "auths": {
                "https://localhost:5002": {"auth": basic("scheme-user", PASSWORD)},
                "localhost:5002": {"auth": basic("exact-user", PASSWORD)},
            }
        },
    )

    credentials = load_credentials(path, "localhost:5002")

    assert credentials is not None
    assert credentials.username == "exact-user"


def test_load_other_registry_or_port_not_matched(tmp_path):
    path = write_config(tmp_path, {"auths": {"localhost:5002": {"auth": basic("u", PASSWORD)}}})

    assert load_credentials(path, "localhost:5001") is None
    assert load_credentials(path, "localhost") is None
    assert load_credentials(path, "docker.io") is None


def test_load_username_and_password_fields(tmp_path):
    path = write_config(
        tmp_path, {"auths": {"ghcr.io": {"username": "octo", "password": PASSWORD}}}
    )

    credentials = load_credentials(path, "ghcr.io")

    assert credentials == Credentials(username="octo", password=PASSWORD)


def test_load_password_with_colon(tmp_path):
    path = write_config(tmp_path, {"auths": {"ghcr.io": {"auth": basic("octo", "a:b:c")}}})

    credentials = load_credentials(path, "ghcr.io")

    assert credentials is not None
    assert credentials.username == "octo"
    assert credentials.password == "a:b:c"


def test_load_identity_token(tmp_path):
    path = write_config(
        tmp_path,
        {"auths": {"myregistry.example": {"auth": basic("<token>", ""), "identitytoken": "refresh-xyz"}}},
    )

    credentials = load_credentials(path, "myregistry.example")

    assert credentials is not None
    assert credentials.identity_token == "refresh-xyz"
    assert credentials.username == "<token>"


def test_load_missing_file_returns_none(tmp_path):
    assert load_credentials(tmp_path / "absent.json", "localhost:5002") is None


def test_load_empty_entry_returns_none(tmp_path):
    path = write_config(tmp_path, {"auths": {"localhost:5002": {}}})

    assert load_credentials(path, "localhost:5002") is None


def test_load_credential_helpers_unsupported(tmp_path):
    path = write_config(
        tmp_path,
        {
            "auths": {"localhost:5002": {}},
            "credsStore": "desktop",
            "credHelpers": {"ghcr.io": "gh"},
        },
    )

    assert load_credentials(path, "localhost:5002") is None
    assert load_credentials(path, "ghcr.io") is None


def test_load_invalid_json_hides_content(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"auths": {"x": {"auth": "' + PASSWORD + '"', encoding="utf-8")

    with pytest.raises(PermanentError) as raised:
        load_credentials(path, "x")

    message = str(raised.value)
    assert str(path) in message
    assert "invalid JSON" in message
    assert PASSWORD not in message


def test_load_invalid_base64_hides_value(tmp_path):
    path = write_config(tmp_path, {"auths": {"localhost:5002": {"auth": PASSWORD + "!"}}})

    with pytest.raises(PermanentError) as raised:
        load_credentials(path, "localhost:5002")

    message = str(raised.value)
    assert "'localhost:5002'" in message
    assert "base64" in message
    assert PASSWORD not in message


def test_load_auth_without_colon_rejected(tmp_path):
    encoded = base64.b64encode(b"no-separator").decode()
    path = write_config(tmp_path, {"auths": {"localhost:5002": {"auth": encoded}}})

    with pytest.raises(PermanentError) as raised:
        load_credentials(path, "localhost:5002")

    assert "no ':' between user and password" in str(raised.value)


def test_load_auths_not_object_rejected(tmp_path):
    path = write_config(tmp_path, {"auths": ["localhost:5002"]})

    with pytest.raises(PermanentError) as raised:
        load_credentials(path, "localhost:5002")

    assert "'auths' must be an object" in str(raised.value)


def test_load_default_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    write_config(tmp_path, {"auths": {"localhost:5002": {"auth": basic("env-user", PASSWORD)}}})

    credentials = load_credentials(None, "localhost:5002")

    assert default_config_path() == tmp_path / "config.json"
    assert credentials is not None
    assert credentials.username == "env-user"


def test_credentials_repr_hides_secrets():
    credentials = Credentials(username="dockwright", password=PASSWORD, identity_token="tok-123")

    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert PASSWORD not in text
        assert "tok-123" not in text
        assert "dockwright" in text
