"""Redaction of secret values before logging and rendering."""

from __future__ import annotations

import pytest

from controller.specs.redact import SECRET_MARKERS, is_secret_name, redact, redact_env


@pytest.mark.parametrize("name", ["DB_PASSWORD", "password", "api_secret", "GITHUB_TOKEN", "SSH_KEY", "aws_credentials", "MyTokenValue"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["MODE", "PATH", "HOME", "USER", "PORT", ""])
def test_plain_names(name):
    assert not is_secret_name(name)


def test_markers():
    assert SECRET_MARKERS == ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")


def test_redact_env_masks_secret_values():
    entries = ["DB_PASSWORD=hunter2", "MODE=demo", "EMPTY_TOKEN=", "NOVALUE", "URL=a=b"]
    assert redact_env(entries) == ["DB_PASSWORD=***", "MODE=demo", "EMPTY_TOKEN=***", "NOVALUE", "URL=a=b"]


def test_redact_env_leaves_input_unchanged():
    entries = ["DB_PASSWORD=hunter2"]
    redact_env(entries)
    assert entries == ["DB_PASSWORD=hunter2"]


def test_redact_create_body():
    body = {
        "Image": "app",
        "Env": ["API_TOKEN=abc", "MODE=demo"],
        "Labels": {"deploy.secret": "s3", "team": "web"},
        "HostConfig": {"Binds": ["data:/data"]},
    }
    redacted = redact(body)
    assert redacted["Env"] == ["API_TOKEN=***", "MODE=demo"]
    assert redacted["Labels"] == {"deploy.secret": "***", "team": "web"}
    assert redacted["HostConfig"] == {"Binds": ["data:/data"]}
    assert body["Env"] == ["API_TOKEN=abc", "MODE=demo"]
    assert redacted["HostConfig"] is not body["HostConfig"]


def test_redact_compose_environment_forms():
    spec = {"environment": {"DB_PASSWORD": "x", "MODE": "demo"}, "services": [{"environment": ["SECRET_X=1", "A=2"]}]}
    redacted = redact(spec)
    assert redacted["environment"] == {"DB_PASSWORD": "***", "MODE": "demo"}
    assert redacted["services"][0]["environment"] == ["SECRET_X=***", "A=2"]


def test_redact_registry_credentials():
    config = {
        "auths": {"localhost:5001": {"auth": "dXNlcjpwYXNz", "username": "user", "password": "pass"}},
        "login": {"IdentityToken": "id", "RegistryToken": "reg", "serveraddress": "localhost:5001"},
    }
    redacted = redact(config)
    entry = redacted["auths"]["localhost:5001"]
    assert entry["auth"] == "***"
    assert entry["password"] == "***"
    assert entry["username"] == "user"
    assert redacted["login"]["IdentityToken"] == "***"
    assert redacted["login"]["RegistryToken"] == "***"
    assert redacted["login"]["serveraddress"] == "localhost:5001"


def test_redact_keeps_none_and_scalars():
    assert redact({"API_KEY": None}) == {"API_KEY": None}
    assert redact("DB_PASSWORD=x") == "DB_PASSWORD=x"
    assert redact(5) == 5
    assert redact(("a", {"token": "t"})) == ("a", {"token": "***"})
