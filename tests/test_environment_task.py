"""TaskEnvironment and tasks: the README example, calling tasks outside a run, and env <- task <- override."""

from __future__ import annotations

import asyncio
import inspect
from datetime import timedelta
from typing import Any

import pytest

import flytelike as fl
from flytelike import SpecError, parse_platform_spec

# --- the README training example, verbatim apart from the bodies ---


def build_design_example() -> tuple[fl.TaskEnvironment, Any, Any, Any]:
    env = fl.TaskEnvironment(
        name="training",
        image="ghcr.io/acme/train:1.4",
        resources=fl.Resources(cpu=("1", "2"), memory="4Gi", gpu="A100:1", disk="10Gi", shm="auto"),
        env_vars={"HF_HOME": "/cache"},
        secrets=[fl.Secret("hf-token")],
        cache=fl.Cache(ttl="1h"),
        reusable=fl.ReusePolicy(replicas=2, concurrency=3, idle_ttl=300),
    )

    @env.task(retries=3, timeout="2h")
    async def train(shard: str, lr: float = 1e-3) -> float:
        return lr * (1 + int(shard[1:]))

    @env.task(resources=fl.Resources(cpu="8", memory="16Gi", gpu=fl.GPU("H100", 2)))  # per-task override
    async def heavy() -> str:
        return "heavy"

    @env.task
    async def main(n: int = 3) -> float:
        scores = await asyncio.gather(*(train(f"s{i}") for i in range(n)))  # fan-out
        return max(scores)

    return env, train, heavy, main


def test_design_section_1_constructs() -> None:
    env, train, heavy, main = build_design_example()
    assert sorted(env.tasks) == ["heavy", "main", "train"]
    assert env.image == "ghcr.io/acme/train:1.4"
    assert [t.full_name for t in (train, heavy, main)] == ["training.train", "training.heavy", "training.main"]
    assert [p.name for p in train.interface.inputs] == ["shard", "lr"]


def test_design_section_1_resolution() -> None:
    _, train, heavy, main = build_design_example()
    t = train.resolved()
    assert repr(t.resources) == (
        "Resources(cpu=('1', '2'), memory='4Gi', gpu=GPU(device='A100', quantity=1, partition=None), "
        "disk='10Gi', shm='auto')"
    )
    assert t.retries.count == 3
    assert t.timeout == fl.Timeout("2h")  # type: ignore[arg-type]
    assert t.cache == fl.Cache(ttl="1h")  # type: ignore[arg-type]
    assert t.env_vars == {"HF_HOME": "/cache"}
    assert t.secrets == (fl.Secret("hf-token"),)
    assert t.reusable == fl.ReusePolicy(replicas=2, concurrency=3, idle_ttl=300)
    assert t.image == "ghcr.io/acme/train:1.4"
    assert t.platform is None
    h = heavy.resolved().resources
    assert repr(h) == (
        "Resources(cpu='8', memory='16Gi', gpu=GPU(device='H100', quantity=2, partition=None), disk='10Gi', shm='auto')"
    )
    m = main.resolved()
    assert m.retries.count == 0  # not inherited from a sibling task
    assert m.timeout is None


def test_design_section_1_runs_as_plain_functions_outside_a_run() -> None:
    _, train, heavy, main = build_design_example()
    assert asyncio.run(main(n=3)) == pytest.approx(3e-3)
    assert asyncio.run(heavy()) == "heavy"
    coro = train("s0")
    assert inspect.iscoroutine(coro)
    assert asyncio.run(coro) == pytest.approx(1e-3)


async def test_async_task_awaited_in_a_test() -> None:
    _, train, _, main = build_design_example()
    assert await train("s1", lr=0.5) == 1.0
    assert await main(2) == pytest.approx(2e-3)


def test_sync_task_returns_the_value() -> None:
    env = fl.TaskEnvironment(name="sync")

    @env.task
    def add(a: int, b: int = 1) -> int:
        return a + b

    assert add(1) == 2
    assert add(1, b=5) == 6
    assert not add.is_async
    assert asyncio.run(add.aio(2)) == 3  # aio() works for sync tasks too


def test_task_keeps_the_function_metadata() -> None:
    env = fl.TaskEnvironment(name="meta")

    @env.task
    async def documented(x: int) -> int:
        """Doubles x."""
        return 2 * x

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Doubles x."
    assert documented.fn.__name__ == "documented"
    assert repr(documented) == "<Task meta.documented>"


# --- declaring tasks ---


def test_duplicate_task_names_rejected() -> None:
    env = fl.TaskEnvironment(name="dup")

    @env.task
    def f() -> None: ...

    def g() -> None: ...

    g.__name__ = "f"
    with pytest.raises(SpecError) as info:
        env.task(g)
    assert (info.value.field, info.value.value) == ("dup.task.name", "f")
    assert "unique" in str(info.value.accepted)
    other = env.task(name="g")(g)
    assert other.name == "g"
    assert sorted(env.tasks) == ["f", "g"]


def test_same_name_in_different_environments_is_fine() -> None:
    a = fl.TaskEnvironment(name="a")
    b = fl.TaskEnvironment(name="b")

    def f() -> None: ...

    assert a.task(f).full_name != b.task(f).full_name


def test_generators_rejected() -> None:
    env = fl.TaskEnvironment(name="gen")

    def gen() -> int:  # type: ignore[misc]
        yield 1

    async def agen() -> int:  # type: ignore[misc]
        yield 1

    for fn in (gen, agen):
        with pytest.raises(SpecError, match="generators") as info:
            env.task(fn)
        assert info.value.accepted
    assert env.tasks == {}


@pytest.mark.parametrize("name", ["bad name", "1st", "a-b", "x" * 64, "héllo"])
def test_bad_task_names_rejected(name: str) -> None:
    env = fl.TaskEnvironment(name="names")

    def f() -> None: ...

    with pytest.raises(SpecError) as info:
        env.task(name=name)(f)
    assert (info.value.field, info.value.value) == ("names.task.name", name)
    assert env.tasks == {}


def test_callable_object_without_a_name_is_a_spec_error() -> None:
    env = fl.TaskEnvironment(name="objs")

    class CallableObject:
        def __call__(self) -> None: ...

    with pytest.raises(SpecError):
        env.task(CallableObject())


def test_not_a_function_rejected() -> None:
    env = fl.TaskEnvironment(name="nf")

    def f() -> None: ...

    t = env.task(f)
    with pytest.raises(SpecError, match="not a function"):
        env.task(t)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="not a function"):
        env.task(42)  # type: ignore[call-overload]


def test_unknown_task_option_rejected() -> None:
    env = fl.TaskEnvironment(name="opts")

    def f() -> None: ...

    with pytest.raises(TypeError):
        env.task(bogus=1)(f)  # type: ignore[call-overload]


# --- TaskEnvironment validation ---


@pytest.mark.parametrize("name", ["training", "a", "ml-training", "a_b-c", "x" * 63, "v2"])
def test_env_names_accepted(name: str) -> None:
    assert fl.TaskEnvironment(name=name).name == name


@pytest.mark.parametrize("name", ["Bad Name", "x" * 64, "-a", "a-", "Training", "", "a.b", 1])
def test_env_names_rejected_with_a_valid_suggestion(name: object) -> None:
    with pytest.raises(SpecError) as info:
        fl.TaskEnvironment(name=name)  # type: ignore[arg-type]
    e = info.value
    assert (e.field, e.value) == ("TaskEnvironment.name", name)
    suggestion = str(e.accepted).rsplit("e.g. ", 1)[1].strip("'")
    assert fl.TaskEnvironment(name=suggestion).name == suggestion  # the suggestion itself is valid


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image": "has space"}, "x.image"),
        ({"image": ""}, "x.image"),
        ({"env_vars": {"1X": "v"}}, "x.env_vars key"),
        ({"env_vars": {"A": 1}}, "x.env_vars['A']"),
        ({"env_vars": ["A=1"]}, "x.env_vars"),
        ({"secrets": ["a-b", "a.b"]}, "x.secrets"),
        ({"secrets": [5]}, "x.secrets"),
        ({"reusable": 3}, "x.reusable"),
        ({"resources": "cpu=2"}, "x.resources"),
        ({"resources": {"cpux": 2}}, "x.resources"),
        ({"platform": 5}, "x.platform"),
        ({"platform": "slurm"}, "--with"),
        ({"cache": "sometimes"}, "x.cache"),
        ({"retries": -1}, "x.retries"),
        ({"timeout": "soon"}, "x.timeout"),
        ({"depends_on": [1]}, "x.depends_on"),
        ({"description": 5}, "x.description"),
    ],
)
def test_env_option_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.TaskEnvironment(name="x", **kwargs)
    assert info.value.field == field
    assert info.value.accepted


def test_env_option_conveniences() -> None:
    env = fl.TaskEnvironment(
        name="conv",
        resources={"cpu": 2},  # type: ignore[arg-type]
        platform="batch:queue=q",
        secrets="hf-token",
        cache=True,
        depends_on=[fl.TaskEnvironment(name="dep")],
        description="nightly",
    )
    assert env.resources == fl.Resources(cpu=2)
    assert env.options.platform == fl.Batch(queue="q")
    assert env.options.secrets == (fl.Secret("hf-token"),)
    assert env.options.cache == fl.Cache()
    assert [d.name for d in env.depends_on] == ["dep"]
    assert env.description == "nightly"


# --- env <- task <- override ---


def make(env_kwargs: dict[str, Any] | None = None, **task_kwargs: Any) -> Any:
    env = fl.TaskEnvironment(name="m", **(env_kwargs or {}))

    def f() -> None: ...

    return env.task(**task_kwargs)(f) if task_kwargs else env.task(f)


def test_task_memory_keeps_env_cpu_and_gpu() -> None:
    t = make({"resources": fl.Resources(cpu=2, memory="1Gi", gpu="A100:1")}, resources=fl.Resources(memory="4Gi"))
    assert repr(t.resolved().resources) == (
        "Resources(cpu='2', memory='4Gi', gpu=GPU(device='A100', quantity=1, partition=None))"
    )


def test_override_is_field_by_field_and_falsy_values_reset() -> None:
    t = make({"resources": fl.Resources(cpu=2, gpu="A100:1"), "retries": 2}, timeout="1h")
    assert t.resolved().retries.count == 2
    o = t.override(resources=fl.Resources(gpu=0), retries=0)
    r = o.resolved()
    assert r.resources.gpu == 0
    assert r.resources.gpu_count == 0
    assert r.resources.cpu == fl.Resources(cpu=2).cpu
    assert r.retries.count == 0
    assert r.timeout == fl.Timeout("1h")  # type: ignore[arg-type]
    # the original task is unchanged
    assert t.resolved().resources.gpu == fl.GPU("A100", 1)
    assert t.resolved().retries.count == 2


def test_override_layers_stack() -> None:
    t = make({"resources": fl.Resources(cpu=1, memory="1Gi")}, resources=fl.Resources(memory="2Gi"))
    o = t.override(resources=fl.Resources(cpu=4)).override(resources=fl.Resources(disk="10Gi"))
    assert repr(o.resolved().resources) == "Resources(cpu='4', memory='2Gi', disk='10Gi')"


def test_override_name() -> None:
    t = make()
    o = t.override(name="renamed", retries=1)
    assert (o.name, o.full_name) == ("renamed", "m.renamed")
    assert o.interface is t.interface
    assert o.fn is t.fn
    assert t.name == "f"
    with pytest.raises(SpecError) as info:
        t.override(name="bad name")
    assert info.value.field == "m.f.override.name"
    with pytest.raises(SpecError) as info:
        t.override(bogus=1)
    assert info.value.value == "bogus"


def test_resolved_defaults() -> None:
    r = make().resolved()
    assert r.retries == fl.RetryPolicy(0)
    assert r.retries.count == 0
    assert (r.timeout, r.cache, r.platform, r.image, r.reusable) == (None, None, None, None, None)
    assert r.resources.is_empty()
    assert r.env_vars == {}
    assert r.secrets == ()


@pytest.mark.parametrize("disabled", [fl.Cache(enabled=False), False, "disable"])
def test_task_cache_disable_overrides_env_cache(disabled: object) -> None:
    t = make({"cache": fl.Cache(ttl="1h")}, cache=disabled)
    assert t.resolved().cache is None
    assert make({"cache": fl.Cache(ttl="1h")}).resolved().cache == fl.Cache(ttl="1h")  # type: ignore[arg-type]
    assert make({"cache": False}, cache=True).resolved().cache == fl.Cache()


def test_env_vars_merge_by_key() -> None:
    t = make({"env_vars": {"A": "1", "B": "2"}}, env_vars={"B": "3", "C": "4"})
    assert t.resolved().env_vars == {"A": "1", "B": "3", "C": "4"}


def test_retry_policy_objects_and_timeouts() -> None:
    policy = fl.RetryPolicy(2, backoff="10s")
    t = make(retries=policy, timeout=fl.Timeout("2h", max_queued_time="1h"))  # type: ignore[arg-type]
    r = t.resolved()
    assert r.retries is policy
    assert r.timeout is not None
    assert r.timeout.max_queued_time == timedelta(hours=1)


# --- platforms and Resources combine by the larger value ---


@pytest.mark.parametrize("where", ["env", "task"])
def test_batch_platform_and_resources_take_the_max(where: str) -> None:
    platform = fl.Batch(cpu=4, memory=8000)
    resources = fl.Resources(cpu=2, memory="16000Mi")
    t = (
        make({"platform": platform}, resources=resources)
        if where == "env"
        else make(platform=platform, resources=resources)
    )
    r = t.resolved().resources
    assert r.cpu is not None
    assert r.memory is not None
    assert str(r.cpu.request) == "4"
    assert str(r.memory.request) == "16000Mi"
    assert t.resolved().platform == platform


def test_platform_without_memory_lets_resources_win() -> None:
    t = make(platform=fl.Kubernetes(namespace="ml"), resources=fl.Resources(memory="16Gi"))
    r = t.resolved().resources
    assert repr(r) == "Resources(memory='16Gi')"  # no built-in default memory or cpu appears


@pytest.mark.parametrize(("platform_memory", "resources_memory"), [("16000Mi", "16Gi"), ("16Gi", "16000Mi")])
def test_platform_max_is_unit_aware(platform_memory: str, resources_memory: str) -> None:
    t = make(platform=fl.Kubernetes(memory=platform_memory), resources=fl.Resources(memory=resources_memory))
    memory = t.resolved().resources.memory
    assert memory is not None
    assert str(memory.request) == "16Gi"


def test_env_and_task_platforms_of_the_same_kind_overlay() -> None:
    t = make({"platform": fl.Batch(queue="a", cpu=2, swappiness=10)}, platform=fl.Batch(memory=100, swappiness=0))
    assert t.resolved().platform == fl.Batch(queue="a", cpu=2, memory=100, swappiness=0)


def test_task_platform_of_another_kind_replaces_the_env_one() -> None:
    t = make({"platform": fl.Batch(queue="a", cpu=8)}, platform=fl.Kubernetes(namespace="ml"))
    r = t.resolved()
    assert r.platform == fl.Kubernetes(namespace="ml")
    assert r.resources.is_empty()


def test_gpu_from_platform_and_resources() -> None:
    t = make(platform=fl.Batch(gpu=2), resources=fl.Resources(gpu="A100:1"))
    assert t.resolved().resources.gpu == fl.GPU("A100", 2)


# --- --with ---


def test_with_platform_task_attributes_win_except_resources() -> None:
    t = make(
        platform=fl.Batch(queue="mine", cpu=1, swappiness=0),
        resources=fl.Resources(cpu=2, memory="64Gi"),
    )
    r = t.resolved(with_platform=parse_platform_spec("batch:cpu=8,queue=q,memory=32768,max_swap=100"))
    assert isinstance(r.platform, fl.Batch)
    assert (r.platform.queue, r.platform.swappiness, r.platform.max_swap) == ("mine", 0, 100)
    assert repr(r.resources) == "Resources(cpu='8', memory='64Gi')"


def test_with_platform_applies_to_tasks_without_one() -> None:
    t = make(resources=fl.Resources(cpu=2, memory="4Gi"))
    with_ = parse_platform_spec("batch:cpu=8,queue=q")
    r = t.resolved(with_platform=with_)
    assert r.platform == with_
    assert repr(r.resources) == "Resources(cpu='8', memory='4Gi')"
    assert t.resolved().platform is None  # only for that run


def test_with_platform_keeps_larger_task_resources() -> None:
    t = make(resources=fl.Resources(memory="64Gi", gpu="A100:4"))
    r = t.resolved(with_platform=parse_platform_spec("batch:memory=1024,gpu=1"))
    assert repr(r.resources) == "Resources(memory='64Gi', gpu=GPU(device='A100', quantity=4, partition=None))"


@pytest.mark.parametrize("pinned", ["env", "task"])
def test_with_another_platform_is_an_error_naming_the_task(pinned: str) -> None:
    k = fl.Kubernetes(namespace="ml")
    t = make({"platform": k}) if pinned == "env" else make(platform=k)
    with pytest.raises(SpecError) as info:
        t.resolved(with_platform=parse_platform_spec("batch"))
    e = info.value
    assert e.field == "m.f"
    assert "m.f" in str(e)
    assert "kubernetes" in str(e)
    assert "--with kubernetes" in str(e.accepted)
