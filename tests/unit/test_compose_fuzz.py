"""Property tests: any service mapping gives a plan or a SpecError, never another exception."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.errors import SpecError
from controller.specs.compose import SUPPORTED_KEYS, plan_service

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["80", "8080:80", "/data", "data:/data", "1m", "512m", "on-failure:2", "NONE", "CMD", "a=b", "host", "container:web"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["target", "published", "type", "source", "soft", "hard", "aliases", "test", "driver", "options", "resources", "limits", "memory", "cpus", "path", "required", "disable", "interval", "a"]) | st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=12,
)
SERVICES = st.dictionaries(st.sampled_from(SUPPORTED_KEYS), VALUES, max_size=5)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SERVICES)
def test_plan_or_spec_error(service):
    """Every input ends in a ContainerPlan or a SpecError that names a field."""
    try:
        plan = plan_service(service, name="fuzz-app", image="busybox", base_dir=Path("/nonexistent-base"))
    except SpecError as error:
        assert error.field
        return
    assert plan.body["Image"] == "busybox"


@settings(max_examples=300, deadline=None)
@given(SERVICES)
def test_compose_mode_plan_or_spec_error(service):
    """Compose-file semantics (project, undefined networks and volumes) fail only with SpecError."""
    try:
        plan_service(service, name=None, image=None, project="fuzz", service_name="web", top_level_networks={"front": {}}, top_level_volumes={"data": {}})
    except SpecError as error:
        assert error.field
