"""TaskEnvironment.clone_with and add_dependency; turning reuse off in an override, and what reuse forbids."""

from __future__ import annotations

from datetime import timedelta

import pytest

import flytelike as fl
from flytelike._serde._template import task_template


def test_clone_with_replaces_the_given_fields_and_keeps_the_rest() -> None:
    base = fl.TaskEnvironment(
        name="base",
        image="acme/train:1",
        resources=fl.Resources(cpu=2, memory="4Gi"),
        env_vars={"MODE": "fast"},
        retries=2,
        description="shared",
    )

    @base.task
    async def step() -> None: ...

    gpu = base.clone_with("gpu", resources=fl.Resources(gpu="T4:1"), env_vars={"MODE": "slow"})
    assert gpu.name == "gpu"
    assert gpu.tasks == {}
    assert gpu.image == "acme/train:1"
    assert gpu.resources == fl.Resources(gpu="T4:1")  # a whole field replaced, not merged
    assert dict(gpu.options.env_vars or {}) == {"MODE": "slow"}
    assert gpu.options.retries == fl.RetryPolicy(2)
    assert gpu.description == "shared"
    assert list(base.tasks) == ["step"]


def test_clone_with_rejects_unknown_settings_and_bad_names() -> None:
    base = fl.TaskEnvironment(name="base")
    with pytest.raises(fl.SpecError) as info:
        base.clone_with("other", imagee="x")
    assert (info.value.field, info.value.value) == ("base.clone_with", "imagee")
    with pytest.raises(fl.SpecError) as bad:
        base.clone_with("Not Valid")
    assert bad.value.field == "TaskEnvironment.name"


def test_add_dependency_after_construction() -> None:
    a, b, c = (fl.TaskEnvironment(name=n) for n in "abc")
    a.add_dependency(b)
    a.add_dependency(c, b)
    assert [e.name for e in a.depends_on] == ["b", "c"]
    with pytest.raises(fl.SpecError) as info:
        a.add_dependency("b")  # type: ignore[arg-type]
    assert info.value.value == "b"
    assert "not a TaskEnvironment" in info.value.problem
    with pytest.raises(fl.SpecError) as itself:
        a.add_dependency(a)
    assert "itself" in itself.value.problem


def test_dependencies_added_to_a_clone_do_not_leak() -> None:
    base, shared, extra = (fl.TaskEnvironment(name=n) for n in ("base", "shared", "extra"))
    base.add_dependency(shared)
    clone = base.clone_with("clone")
    clone.add_dependency(extra)
    assert [e.name for e in clone.depends_on] == ["shared", "extra"]
    assert [e.name for e in base.depends_on] == ["shared"]


reused = fl.TaskEnvironment(
    name="reused", resources=fl.Resources(cpu=1), reusable=fl.ReusePolicy(2, concurrency=4, scaledown_ttl="10m")
)


@reused.task
async def work(x: int) -> int:
    return x


def test_an_override_can_turn_reuse_off() -> None:
    assert work.resolved().reusable is not None
    off = work.override(reusable="off")
    assert off.resolved().reusable is None
    assert not task_template(off).HasField("reuse_policy")
    assert work.override(reusable=None).resolved().reusable == reused.options.reusable  # None inherits
    assert fl.run(off, 3).outputs == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"resources": fl.Resources(cpu=4)}, "resources"),
        ({"env_vars": {"X": "1"}}, "env_vars"),
        ({"secrets": ["hf-token"]}, "secrets"),
    ],
)
def test_changing_what_replicas_share_needs_reuse_off(change: dict[str, object], field: str) -> None:
    with pytest.raises(fl.SpecError) as info:
        work.override(**change)
    assert info.value.field == f"reused.work.override.{field}"
    assert "shared warm replicas" in info.value.problem
    assert "reusable='off'" in (info.value.accepted or "")
    allowed = work.override(reusable="off", **change)
    assert allowed.resolved().reusable is None
    assert work.override(retries=3).resolved().retries.count == 3  # other options stay free


def test_reuse_settings_are_checked() -> None:
    with pytest.raises(fl.SpecError) as info:
        work.override(reusable="never")
    assert info.value.field == "reused.work.override.reusable"
    assert fl.ReusePolicy(2, scaledown_ttl=90).scaledown_ttl == timedelta(seconds=90)
    with pytest.raises(fl.SpecError) as ttl:
        fl.ReusePolicy(2, scaledown_ttl="soon")
    assert ttl.value.field == "ReusePolicy.scaledown_ttl"
