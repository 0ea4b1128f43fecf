"""Validation of an operation row's columns by `parse_request`.

Rows are written by hand or by other services, so each error must name the column or option
and show the value.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.errors import SpecError
from controller.specs.row import MAX_ATTEMPTS_LIMIT, parse_request

IMAGE = "localhost:5001/demo/web:1"


def parse(**columns: Any) -> Any:
    values: dict[str, Any] = {"type": "start", "container": "web", "image": IMAGE, "spec": None, "options": None}
    values.update(columns)
    return parse_request(**values)


def rejected(**columns: Any) -> SpecError:
    with pytest.raises(SpecError) as raised:
        parse(**columns)
    return raised.value


# Valid rows


def test_start_with_image_only() -> None:
    request = parse()

    assert request.type == "start"
    assert request.container == "web"
    assert request.image == IMAGE
    assert request.spec is None
    assert request.options == {"max_attempts": 5, "pull": "missing", "replace": False, "settle_seconds": 0.0}


def test_start_with_spec_only() -> None:
    request = parse(image=None, container=None, spec='{"image": "localhost:5001/demo/web:1", "ports": ["8080"]}')

    assert request.spec == {"image": IMAGE, "ports": ["8080"]}
    assert request.image is None
    assert request.container is None


def test_recreate_defaults() -> None:
    request = parse(type="recreate", image=None)

    expected = {
        "max_attempts": 5,
        "settle_seconds": 5.0,
        "health_timeout": 60.0,
        "recreate_dependents": True,
        "pull": "always",
    }
    assert request.options.items() >= expected.items()


def test_update_image_defaults() -> None:
    request = parse(type="update_image", container=None)

    assert request.options == {"max_attempts": 5, "recreate": False}


def test_columns_are_stripped() -> None:
    request = parse(container="  web  ", image=f" {IMAGE}\n")

    assert request.container == "web"
    assert request.image == IMAGE


def test_blank_columns_are_empty() -> None:
    request = parse(container="   ", spec="  ", options="")
    start_without_image = rejected(image=" ")

    assert request.container is None
    assert start_without_image.field == "spec"
    assert request.spec is None
    assert request.options["max_attempts"] == 5


def test_json_null_is_empty() -> None:
    request = parse(spec="null", options="null")

    assert request.spec is None
    assert request.options["pull"] == "missing"


def test_options_converted() -> None:
    request = parse(type="recreate", image=None, options='{"settle_seconds": 2, "health_timeout": 0.5, "recreate_dependents": false}')

    assert request.options["settle_seconds"] == 2.0
    assert isinstance(request.options["settle_seconds"], float)
    assert request.options["health_timeout"] == 0.5
    assert request.options["recreate_dependents"] is False


@pytest.mark.parametrize("attempts", [1, MAX_ATTEMPTS_LIMIT])
def test_max_attempts_bounds_accepted(attempts: int) -> None:
    assert parse(options=f'{{"max_attempts": {attempts}}}').options["max_attempts"] == attempts


@pytest.mark.parametrize("policy", ["missing", "always", "never"])
def test_pull_policies(policy: str) -> None:
    assert parse(options=f'{{"pull": "{policy}"}}').options["pull"] == policy


# The type column


@pytest.mark.parametrize("kind", [None, "", "bogus", "Start", "update-image"])
def test_unknown_type(kind: Any) -> None:
    error = rejected(type=kind)

    assert error.field == "type"
    assert f"unknown operation type {kind!r}" in str(error)
    assert "start, recreate, update_image" in str(error)


# JSON columns


@pytest.mark.parametrize("column", ["spec", "options"])
def test_invalid_json(column: str) -> None:
    error = rejected(**{column: "{not json"})

    assert error.field == column
    assert str(error).startswith(f"{column}: invalid JSON '{{not json'")
    assert "write a JSON object" in str(error)


@pytest.mark.parametrize("text", ['{"environment": {"DB_PASSWORD": "hunter2"', '["API_TOKEN=hunter2"]'])
def test_secret_json_not_echoed(text: str) -> None:
    error = rejected(spec=text)

    assert "hunter2" not in str(error)
    assert "not shown because it may contain a secret" in str(error)


def test_long_invalid_json_shortened() -> None:
    text = "{" + "x" * 200

    error = rejected(spec=text)

    assert "x" * 76 + "..." in str(error)
    assert "x" * 100 not in str(error)


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "list"), ('"web"', "str"), ("42", "int"), ("true", "bool")])
@pytest.mark.parametrize("column", ["spec", "options"])
def test_json_not_object(column: str, text: str, kind: str) -> None:
    error = rejected(**{column: text})

    assert error.field == column
    assert f"must be a JSON object, got {kind} {text!r}" in str(error)


# Options


@pytest.mark.parametrize(
    ("kind", "option"),
    [("start", "recreate"), ("start", "health_timeout"), ("recreate", "replace"), ("update_image", "pull"), ("start", "bogus")],
)
def test_unknown_option(kind: str, option: str) -> None:
    columns: dict[str, Any] = {"type": kind, "options": f'{{"{option}": 1}}'}
    if kind == "update_image":
        columns["container"] = None

    error = rejected(**columns)

    assert error.field == f"options.{option}"
    assert f"unknown option for a {kind} operation" in str(error)
    assert "max_attempts" in str(error)


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ('{"replace": "yes"}', "options.replace", "must be true or false, got 'yes'"),
        ('{"replace": 1}', "options.replace", "must be true or false, got 1"),
        ('{"max_attempts": true}', "options.max_attempts", "must be an integer, got True"),
        ('{"max_attempts": 2.5}', "options.max_attempts", "must be an integer, got 2.5"),
        ('{"max_attempts": "3"}', "options.max_attempts", "must be an integer, got '3'"),
        ('{"max_attempts": 0}', "options.max_attempts", f"must be between 1 and {MAX_ATTEMPTS_LIMIT}, got 0"),
        (f'{{"max_attempts": {MAX_ATTEMPTS_LIMIT + 1}}}', "options.max_attempts", f"got {MAX_ATTEMPTS_LIMIT + 1}"),
        ('{"pull": 1}', "options.pull", "must be a str, got 1"),
        ('{"pull": "sometimes"}', "options.pull", "must be one of missing, always, never, got 'sometimes'"),
    ],
)
def test_bad_start_option(options: str, field: str, message: str) -> None:
    error = rejected(options=options)

    assert error.field == field
    assert message in str(error)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('{"settle_seconds": -1}', "must be a non-negative number of seconds, got -1"),
        ('{"settle_seconds": "5"}', "must be a non-negative number of seconds, got '5'"),
        ('{"health_timeout": true}', "must be a non-negative number of seconds, got True"),
        ('{"recreate_dependents": "no"}', "must be true or false, got 'no'"),
        ('{"pull": "later"}', "must be one of missing, always, never"),
    ],
)
def test_bad_recreate_option(options: str, message: str) -> None:
    error = rejected(type="recreate", image=None, options=options)

    assert error.field.startswith("options.")
    assert message in str(error)


def test_bad_update_image_option() -> None:
    error = rejected(type="update_image", container=None, options='{"recreate": "true"}')

    assert error.field == "options.recreate"
    assert "must be true or false, got 'true'" in str(error)


# Required columns per type


def test_recreate_needs_container() -> None:
    error = rejected(type="recreate", container=None)

    assert error.field == "container"
    assert "needs the name of the container" in str(error)


def test_update_image_needs_image() -> None:
    error = rejected(type="update_image", container=None, image="  ")

    assert error.field == "image"
    assert "such as localhost:5001/team/app:1" in str(error)


def test_start_needs_image_or_spec() -> None:
    error = rejected(image=None, spec=None)

    assert error.field == "spec"
    assert "a start needs an image" in str(error)


@pytest.mark.parametrize("kind", ["recreate", "update_image"])
def test_spec_only_for_start(kind: str) -> None:
    error = rejected(type=kind, spec='{"image": "x"}')

    assert error.field == "spec"
    assert f"a {kind} operation takes no spec; remove it" in str(error)
