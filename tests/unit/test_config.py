"""Settings from a YAML file, `DOCKWRIGHT_*` variables and overrides, and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, Settings, load_settings, parse_bind, redact_url


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dockwright.yaml"
    path.write_text(text)
    return path


# Sources and precedence


def test_defaults_without_sources() -> None:
    settings = load_settings(environ={})

    assert settings.database_url == "sqlite:///dockwright.db"
    assert settings.docker_host is None
    assert settings.host == "local"
    assert settings.concurrency == 4
    assert settings.poll_interval == 1.0
    assert settings.stale_after == 300.0
    assert settings.log_retention_days == 30.0
    assert settings.shutdown_grace == 30.0
    assert settings.http_bind == "127.0.0.1:9321"
    assert settings.api_token is None
    assert settings.migrate_on_start is True


def test_yaml_file_values(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "database_url: sqlite:////var/lib/dockwright/ops.db\n"
        "concurrency: 8\n"
        "poll_interval: 0.5\n"
        "migrate_on_start: false\n"
        "api_token: 12345\n"
        "docker_host: unix:///run/docker.sock\n",
    )

    settings = load_settings(path, environ={})

    assert settings.database_url == "sqlite:////var/lib/dockwright/ops.db"
    assert settings.concurrency == 8
    assert settings.poll_interval == 0.5
    assert settings.migrate_on_start is False
    assert settings.api_token == "12345"
    assert settings.docker_host == "unix:///run/docker.sock"


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "concurrency: 8\nhost: file-host\n")

    settings = load_settings(path, environ={"DOCKWRIGHT_CONCURRENCY": "2"})

    assert settings.concurrency == 2
    assert settings.host == "file-host"


def test_overrides_win(tmp_path: Path) -> None:
    path = write_config(tmp_path, "database_url: sqlite:///file.db\n")

    settings = load_settings(
        path,
        environ={"DOCKWRIGHT_DATABASE_URL": "sqlite:///env.db"},
        overrides={"database_url": "sqlite:///flag.db", "concurrency": None},
    )

    assert settings.database_url == "sqlite:///flag.db"
    assert settings.concurrency == 4


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, "host: from-file\n")

    settings = load_settings(environ={"DOCKWRIGHT_CONFIG": str(path)})

    assert settings.host == "from-file"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")

    assert load_settings(path, environ={}) == load_settings(environ={})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("false", False), ("NO", False), ("off", False)],
)
def test_boolean_spellings(raw: str, expected: bool) -> None:
    assert load_settings(environ={"DOCKWRIGHT_MIGRATE_ON_START": raw}).migrate_on_start is expected


def test_empty_values_mean_default_or_none() -> None:
    settings = load_settings(environ={"DOCKWRIGHT_CONCURRENCY": "", "DOCKWRIGHT_API_TOKEN": "", "DOCKWRIGHT_DOCKER_HOST": " "})

    assert settings.concurrency == 4
    assert settings.api_token is None
    assert settings.docker_host is None


def test_null_in_file_means_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, "concurrency:\napi_token:\n")

    settings = load_settings(path, environ={})

    assert settings.concurrency == 4
    assert settings.api_token is None


def test_integer_written_as_float(tmp_path: Path) -> None:
    path = write_config(tmp_path, "concurrency: 3.0\n")

    assert load_settings(path, environ={}).concurrency == 3


# File errors


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError, match=r"config file '.*absent\.yaml' not found"):
        load_settings(missing, environ={})


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write_config(tmp_path, "concurrency: [\n")

    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_settings(path, environ={})


def test_file_not_a_mapping(tmp_path: Path) -> None:
    path = write_config(tmp_path, "- concurrency\n- 3\n")

    with pytest.raises(ConfigError, match="must contain a mapping of settings"):
        load_settings(path, environ={})


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "concurency: 3\n")

    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})

    assert "unknown setting 'concurency'" in str(raised.value)
    assert "concurrency" in str(raised.value).split("known settings are:")[1]


def test_unknown_environment_variable_ignored() -> None:
    settings = load_settings(environ={"DOCKWRIGHT_CONCURENCY": "0"})

    assert settings.concurrency == 4


# Bad types


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("DOCKWRIGHT_CONCURRENCY", "four", "DOCKWRIGHT_CONCURRENCY: concurrency must be of type int, got 'four'"),
        ("DOCKWRIGHT_CONCURRENCY", "2.5", "concurrency must be of type int, got '2.5'"),
        ("DOCKWRIGHT_POLL_INTERVAL", "soon", "poll_interval must be of type float, got 'soon'"),
        ("DOCKWRIGHT_POLL_INTERVAL", "nan", "poll_interval must be of type float, got 'nan'"),
        ("DOCKWRIGHT_STALE_AFTER", "inf", "stale_after must be of type float, got 'inf'"),
        ("DOCKWRIGHT_MIGRATE_ON_START", "maybe", "migrate_on_start must be of type bool, got 'maybe'"),
    ],
)
def test_bad_environment_types(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={variable: raw})

    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurrency: [1, 2]\n", "concurrency must be of type int, got [1, 2]"),
        ("concurrency: 2.5\n", "concurrency must be of type int, got 2.5"),
        ("concurrency: true\n", "concurrency must be of type int, got True"),
        ("poll_interval: false\n", "poll_interval must be of type float, got False"),
        ("host: {name: a}\n", "host must be of type str, got {'name': 'a'}"),
        ("migrate_on_start: 2\n", "migrate_on_start must be of type bool, got 2"),
    ],
)
def test_bad_file_types(tmp_path: Path, text: str, message: str) -> None:
    path = write_config(tmp_path, text)

    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})

    assert message in str(raised.value)
    assert str(path) in str(raised.value)


# Value checks


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1, got 0"),
        ({"poll_interval": 0}, "poll_interval must be a positive number of seconds, got 0"),
        ({"stale_after": -1}, "stale_after must be a positive number of seconds, got -1"),
        ({"shutdown_grace": 0}, "shutdown_grace must be a positive number of seconds"),
        ({"sweep_interval": 0}, "sweep_interval must be a positive number of seconds"),
        ({"docker_timeout": 0}, "docker_timeout must be a positive number of seconds"),
        ({"log_retention_days": -1}, "log_retention_days must not be negative, got -1"),
        ({"log_format": "xml"}, "log_format must be auto, json or console, got 'xml'"),
        ({"log_level": "TRACE"}, "log_level must be DEBUG, INFO, WARNING or ERROR, got 'TRACE'"),
        ({"host": ""}, "host must not be empty"),
        ({"http_bind": "9321"}, "http_bind must be HOST:PORT such as 127.0.0.1:9321, got '9321'"),
        ({"http_bind": "127.0.0.1:http"}, "http_bind must be HOST:PORT"),
        ({"http_bind": "0.0.0.0:9321"}, "http_bind '0.0.0.0:9321' is not a loopback address and no api_token is set"),
        ({"http_bind": "[::]:9321"}, "is not a loopback address"),
        ({"http_bind": "example.internal:9321"}, "is not a loopback address"),
    ],
)
def test_invalid_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings(**changes)

    assert message in str(raised.value)


def test_invalid_value_from_environment() -> None:
    with pytest.raises(ConfigError, match="concurrency must be at least 1, got 0"):
        load_settings(environ={"DOCKWRIGHT_CONCURRENCY": "0"})


@pytest.mark.parametrize("bind", ["127.0.0.1:9321", "127.0.0.2:80", "localhost:9321", "[::1]:9321"])
def test_loopback_binds_need_no_token(bind: str) -> None:
    assert Settings(http_bind=bind).http_bind == bind


def test_public_bind_with_token() -> None:
    settings = Settings(http_bind="0.0.0.0:9321", api_token="s3cret")

    assert settings.http_bind == "0.0.0.0:9321"


def test_parse_bind_ipv6() -> None:
    assert parse_bind("[::1]:9321") == ("::1", 9321)


def test_replace_validates_again() -> None:
    settings = Settings()

    with pytest.raises(ConfigError, match="concurrency must be at least 1"):
        settings.replace(concurrency=0)


# Redaction


def test_redacted_hides_secrets() -> None:
    settings = Settings(api_token="s3cret", database_url="postgresql://dockwright:pw@127.0.0.1/ops")

    redacted = settings.redacted()

    assert redacted["api_token"] == "***"
    assert redacted["database_url"] == "postgresql://dockwright:***@127.0.0.1/ops"
    assert "s3cret" not in str(redacted)
    assert settings.api_token == "s3cret"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///dockwright.db", "sqlite:///dockwright.db"),
        ("postgresql://user@db/ops", "postgresql://user:***@db/ops"),
        ("postgresql://user:p@ss@db/ops", "postgresql://user:***@db/ops"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
