"""Durations and byte sizes as Compose writes them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import SpecError
from controller.specs.units import format_duration, parse_bytes, parse_duration

SECOND = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("30s", 30 * SECOND),
        ("1m30s", 90 * SECOND),
        ("500ms", 500_000_000),
        ("1h", 3600 * SECOND),
        ("1.5s", 1_500_000_000),
        ("2us", 2_000),
        ("2µs", 2_000),
        ("7ns", 7),
        ("1h2m3s", 3723 * SECOND),
        ("0", 0),
        (" 10s ", 10 * SECOND),
    ],
)
def test_parse_duration_strings(text, nanoseconds):
    assert parse_duration(text, field="spec.healthcheck.interval") == nanoseconds


def test_parse_duration_bare_number_is_seconds():
    assert parse_duration(10, field="f") == 10 * SECOND
    assert parse_duration(0.25, field="f") == 250_000_000


@pytest.mark.parametrize("value", ["", "10", "ten", "10x", "s", "-5s", "1m30", True, None, [], -1, {"s": 1}])
def test_parse_duration_invalid(value):
    with pytest.raises(SpecError) as caught:
        parse_duration(value, field="spec.healthcheck.interval")
    assert caught.value.field == "spec.healthcheck.interval"
    assert repr(value) in str(caught.value)
    assert "1m30s" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512m", 512 * 1024**2),
        ("1g", 1024**3),
        ("1G", 1024**3),
        ("1gb", 1024**3),
        ("1GiB", 1024**3),
        ("100k", 102400),
        ("1024", 1024),
        ("1024b", 1024),
        ("1.5g", int(1.5 * 1024**3)),
        ("2t", 2 * 1024**4),
        (67108864, 67108864),
        (0, 0),
    ],
)
def test_parse_bytes(value, size):
    assert parse_bytes(value, field="spec.mem_limit") == size


@pytest.mark.parametrize("value", ["", "lots", "1x", "-1m", "1 gigabyte", True, None, [1], -5])
def test_parse_bytes_invalid(value):
    with pytest.raises(SpecError) as caught:
        parse_bytes(value, field="spec.mem_limit")
    assert caught.value.field == "spec.mem_limit"
    assert "512m" in str(caught.value)


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(0, "0s"), (90 * SECOND, "1m30s"), (500_000_000, "500ms"), (3600 * SECOND, "1h0m0s"), (1_500_000_000, "1.5s"), (5, "5ns")],
)
def test_format_duration(nanoseconds, text):
    assert format_duration(nanoseconds) == text


@given(st.integers(min_value=0, max_value=10**15))
def test_format_duration_parses_back(nanoseconds):
    """Formatting then parsing a duration returns the same nanoseconds (within float rounding)."""
    assert abs(parse_duration(format_duration(nanoseconds), field="f") - nanoseconds) <= 1
