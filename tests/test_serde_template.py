"""Task templates: bytes round trips over generated definitions, the readable description, and determinism."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

import flytelike as fl
from flytelike._proto.core.v1 import literals_pb2, tasks_pb2, types_pb2
from flytelike._serde._decode import describe_template, type_string, value_of
from flytelike._serde._literals import literal_type, to_literal
from flytelike._serde._template import task_template
from flytelike._task import Task
from flytelike._types import type_spec

REPO_ROOT = Path(__file__).resolve().parent.parent


def work(shard: str, lr: float = 1e-3, n: int | None = None) -> list[float]:
    """Module-level so that every generated environment can wrap the same function."""
    return [lr] * (n or 1)


# ---------------------------------------------------------------------------------------------------------------
# Strategies: SDK objects built through the public API.

MILLI = st.integers(min_value=1, max_value=64_000)
MIB = st.integers(min_value=1, max_value=512 * 1024)
CPU = st.one_of(
    st.integers(min_value=1, max_value=64),
    MILLI.map(lambda m: f"{m}m"),
    st.tuples(MILLI, MILLI).map(lambda ab: (f"{min(ab)}m", f"{max(ab)}m")),
)
SIZE = st.one_of(MIB.map(lambda m: f"{m}Mi"), MIB.map(lambda m: f"{m}M"), st.integers(1, 64).map(lambda g: f"{g}Gi"))
MEMORY = st.one_of(SIZE, st.tuples(MIB, MIB).map(lambda ab: (f"{min(ab)}Mi", f"{max(ab)}Mi")))
ACCELERATOR = st.one_of(
    st.integers(min_value=0, max_value=8),
    st.sampled_from(["A100:1", "H100:2", "T4", "L4:4", "MI300X:8", "Inf2:2", "Gaudi2"]),
    st.sampled_from(["1g.5gb", "3g.20gb", "7g.40gb"]).map(lambda p: fl.GPU("A100", 1, p)),
    st.sampled_from(["1g.10gb", "7g.80gb"]).map(lambda p: fl.GPU("H100", 1, p)),
    st.sampled_from(["1x1", "2x4", "4x4"]).map(lambda t: fl.TPU("V5E", t)),
    st.sampled_from(["2x2x1", "2x2x2"]).map(lambda t: fl.TPU("V5P", t)),
    st.builds(fl.Device, st.just("custom-npu"), st.integers(1, 4), st.none(), st.sampled_from(list(fl.DeviceClass))),
)
RESOURCES = st.builds(
    fl.Resources,
    cpu=st.none() | CPU,
    memory=st.none() | MEMORY,
    gpu=st.none() | ACCELERATOR,
    disk=st.none() | SIZE,
    shm=st.none() | st.just("auto") | SIZE,
)
KUBERNETES = st.builds(
    fl.Kubernetes,
    namespace=st.none() | st.just("ml"),
    node_selector=st.none() | st.just({"pool": "gpu", "zone": "a"}),
    tolerations=st.none()
    | st.just([fl.Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")])
    | st.just([fl.Toleration(key="spot", value="true", effect="NoExecute", toleration_seconds=0)]),
    image_pull_policy=st.none() | st.sampled_from(["Always", "IfNotPresent", "Never"]),
    qos=st.none() | st.sampled_from(["Guaranteed", "Burstable"]),
    cpu=st.none() | CPU.filter(lambda c: not isinstance(c, tuple)),
    memory=st.none() | MIB,
    shared_memory=st.none() | MIB.map(lambda m: f"{m}Mi"),
)
BATCH = st.builds(
    fl.Batch,
    queue=st.none() | st.just("gpu-queue"),
    iam_role=st.none() | st.just("arn:aws:iam::123456789012:role/job"),
    shared_memory=st.none() | MIB,
    swappiness=st.none() | st.integers(0, 100),
    efa=st.none() | st.integers(0, 4),
    tags=st.none() | st.just({"team": "ml"}),
    cpu=st.none() | st.integers(1, 96),
    memory=st.none() | MIB,
    gpu=st.none() | st.integers(0, 8),
)
PLATFORM = st.none() | KUBERNETES | BATCH | st.builds(fl.Local, process=st.none() | st.booleans())
RETRIES = (
    st.none()
    | st.integers(0, 5)
    | st.builds(
        fl.RetryPolicy,
        st.integers(0, 5),
        backoff=st.sampled_from(["0s", "10s", "1m"]),
        backoff_multiplier=st.sampled_from([1, 1.5, 2]),
        oom_memory_multiplier=st.none() | st.sampled_from([1.5, 2]),
    )
)
CACHE = (
    st.none()
    | st.just(True)
    | st.builds(fl.Cache, ttl=st.none() | st.sampled_from(["1h", 90]), version=st.none() | st.just("v2"))
)
TIMEOUT = st.none() | st.sampled_from(["90s", "2h", 3600, dt.timedelta(milliseconds=1500)])
REUSE = st.none() | st.builds(
    fl.ReusePolicy, replicas=st.integers(1, 3), concurrency=st.integers(1, 4), idle_ttl=st.none() | st.just(300)
)

_names = (f"env-{i}" for i in itertools.count())


@st.composite
def tasks(draw: st.DrawFn) -> Task[..., Any]:
    env = fl.TaskEnvironment(
        name=next(_names),
        image=draw(st.none() | st.just("ghcr.io/acme/train:1.4")),
        resources=draw(st.none() | RESOURCES),
        env_vars=draw(st.none() | st.just({"B": "2", "A": "1"})),
        secrets=draw(st.none() | st.just([fl.Secret("hf-token"), fl.Secret("key", group="db", mount_path="/etc/db")])),
        reusable=draw(REUSE),
    )
    options = {
        "resources": draw(st.none() | RESOURCES),
        "platform": draw(PLATFORM),
        "retries": draw(RETRIES),
        "timeout": draw(TIMEOUT),
        "cache": draw(CACHE),
    }
    task: Task[..., Any] = env.task(**options)(work)  # type: ignore[call-overload]
    try:
        task.resolved()
    except fl.SpecError:  # e.g. a TPU slice combined with a platform's larger GPU count: rightly refused
        reject()
    return task


def expected_resources(task: Task[..., Any]) -> dict[str, dict[str, str]]:
    """What the SDK objects say the template must request, as canonical strings."""
    r = task.resolved().resources
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for name, amount in (("cpu", r.cpu), ("memory", r.memory), ("disk", r.disk)):
        if amount is not None and not amount.is_zero:
            requests[name] = str(amount.request)
            if amount.limit is not None:
                limits[name] = str(amount.limit)
    if r.gpu_count:
        requests["gpu"] = limits["gpu"] = str(r.gpu_count)
    return {"requests": requests, "limits": limits}


@settings(max_examples=120, deadline=None)
@given(tasks())
def test_template_bytes_round_trip_and_describe_matches_the_sdk(task: Task[..., Any]) -> None:
    template = task_template(task)
    data = template.SerializeToString(deterministic=True)
    decoded = tasks_pb2.TaskTemplate.FromString(data)
    assert decoded == template
    assert decoded.SerializeToString(deterministic=True) == data
    assert task_template(task).SerializeToString(deterministic=True) == data  # the same definition, the same bytes

    shown = describe_template(decoded)
    resolved = task.resolved()
    resources = shown["resources"]
    assert {k: dict(v) for k, v in resources.items()} == expected_resources(task)
    if resolved.resources.memory is not None and not resolved.resources.memory.is_zero:
        assert resources["requests"]["memory"] == str(resolved.resources.memory.request)
    gpu = resolved.resources.gpu
    if isinstance(gpu, fl.Device):
        assert shown["accelerator"] == {
            "device": gpu.device,
            "class": gpu.device_class.value,
            "partition": gpu.partition,
            "count": gpu.quantity,
        }
    else:
        assert shown["accelerator"] is None
    shm = resolved.resources.shm
    if shm is None or (shm != "auto" and shm.is_zero):
        assert shown["shm"] is None
    else:
        assert shown["shm"]["size"] == ("auto" if shm == "auto" else str(shm.request))
    assert shown["retries"]["count"] == resolved.retries.count
    timeout = resolved.timeout
    assert shown["timeout_seconds"] == (timeout.max_runtime.total_seconds() if timeout else None)
    assert (shown["cache"] is None) == (resolved.cache is None)
    platform = resolved.platform
    assert (shown["platform"] or {}).get("kind") == (platform.name if platform else None)
    assert shown["secrets"] == [f"{s.group}/{s.key}" if s.group else s.key for s in resolved.secrets]
    assert shown["env_vars"] == resolved.env_vars
    assert shown["inputs"] == {
        "shard": {"type": "str"},
        "lr": {"type": "float", "default": 0.001},
        "n": {"type": "int | None", "default": None},
    }
    assert shown["outputs"] == {"o0": "list[float]"}


def test_describe_spells_platform_settings_in_their_own_terms() -> None:
    env = fl.TaskEnvironment(name="k8s")
    platform = fl.Kubernetes(
        namespace="ml",
        image_pull_policy="IfNotPresent",
        qos="Guaranteed",
        tolerations=[fl.Toleration(key="spot", value="true", effect="NoExecute", toleration_seconds=0)],
        node_selector={"zone": "a", "pool": "gpu"},
    )
    shown = describe_template(task_template(env.task(platform=platform)(work)))["platform"]
    assert shown == {
        "kind": "kubernetes",
        "namespace": "ml",
        "node_selector": {"pool": "gpu", "zone": "a"},
        "tolerations": [
            {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoExecute", "toleration_seconds": 0}
        ],
        "image_pull_policy": "IfNotPresent",
        "qos": "Guaranteed",
    }
    batch = describe_template(task_template(env.task(name="b", platform=fl.Batch(queue="q", swappiness=0))(work)))
    assert batch["platform"] == {"kind": "batch", "queue": "q", "swappiness": 0}  # an explicit 0 is shown


def test_describe_shows_retry_policies_and_reuse() -> None:
    env = fl.TaskEnvironment(name="r", reusable=fl.ReusePolicy(replicas=(1, 4), concurrency=2, idle_ttl="5m"))
    policy = fl.RetryPolicy(3, backoff="10s", oom_memory_multiplier=2, oom_memory_limit="64Gi")
    shown = describe_template(task_template(env.task(retries=policy, cache=fl.Cache(version="v2"))(work)))
    assert shown["retries"] == {
        "count": 3,
        "backoff": {"initial_seconds": 10, "multiplier": 2.0, "max_seconds": 300},
        "oom_escalation": {"memory_factor": 2.0, "memory_cap": "64Gi"},
    }
    assert shown["reuse"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "concurrency": 2,
        "idle_ttl_seconds": 300,
        "scaledown_ttl_seconds": None,
    }
    assert shown["cache"] == {
        "version": "v2",
        "ignored_inputs": [],
        "ttl_seconds": None,
        "behavior": "auto",
        "serialize": False,
        "salt": None,
    }


def test_scaledown_ttl_deadline_and_cache_behaviors_reach_the_template() -> None:
    env = fl.TaskEnvironment(name="r2", reusable=fl.ReusePolicy(2, scaledown_ttl="10m"))
    cache = fl.Cache(behavior="override", serialize=True, salt="2024-06")
    t = task_template(env.task(cache=cache, timeout=fl.Timeout("1m", deadline="1h"))(work))
    assert t.reuse_policy.scaledown_ttl.seconds == 600
    md = t.metadata
    assert (md.timeout.seconds, md.deadline.seconds) == (60, 3600)
    assert (md.cache_overwrite, md.cache_serializable, md.cache_salt) == (True, True, "2024-06")
    shown = describe_template(t)
    assert shown["deadline_seconds"] == 3600
    assert shown["cache"]["behavior"] == "override"
    assert shown["reuse"]["scaledown_ttl_seconds"] == 600
    only_deadline = task_template(env.task(name="d", timeout=fl.Timeout(deadline=30))(work)).metadata
    assert not only_deadline.HasField("timeout")
    assert only_deadline.deadline.seconds == 30


def test_timeouts_carry_run_and_queue_limits() -> None:
    env = fl.TaskEnvironment(name="t")
    limited = env.task(timeout=fl.Timeout("2h", max_queued_time="10m"))(work)
    shown = describe_template(task_template(limited))
    assert (shown["timeout_seconds"], shown["max_queued_seconds"]) == (7200, 600)
    plain = describe_template(task_template(fl.TaskEnvironment(name="u").task(timeout="1h")(work)))
    assert (plain["timeout_seconds"], plain["max_queued_seconds"]) == (3600, None)


class Mode(enum.Enum):
    FAST = 1
    SLOW = 2


@dataclasses.dataclass
class Window:
    start: dt.datetime
    length: dt.timedelta
    mode: Mode = Mode.FAST


def test_type_strings_and_default_values_are_plain() -> None:
    cases: list[tuple[Any, Any, str, Any]] = [
        (int, 3, "int", 3),
        (float, float("nan"), "float", "nan"),
        (bytes, b"\x00\xff", "bytes", "AP8="),
        (dt.datetime, dt.datetime(2024, 1, 2, 3, 4, 5, 6), "datetime", "2024-01-02T03:04:05.000006"),
        (dt.datetime, dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "datetime", "2024-01-02T00:00:00Z"),
        (
            dt.datetime,
            dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "datetime",
            "2024-01-02T00:00:00-05:00",
        ),
        (dt.timedelta, dt.timedelta(minutes=1, microseconds=500_000), "timedelta", 60.5),
        (Mode, Mode.SLOW, "Mode", "SLOW"),
        (list[int] | None, [1, 2], "list[int] | None", [1, 2]),
        (
            dict[str, fl.File],
            {"b": fl.File("s3://x/b"), "a": fl.File("a.csv", "csv")},
            "dict[str, File]",
            {"a": "a.csv", "b": "s3://x/b"},
        ),
        (fl.Dir, fl.Dir("s3://bucket/prefix/"), "Dir", "s3://bucket/prefix/"),
        (
            Window | str,
            Window(dt.datetime(2024, 1, 1), dt.timedelta(hours=1)),
            "Window | str",
            {"start": "2024-01-01T00:00:00", "length": 3600, "mode": "FAST"},
        ),
    ]
    for annotation, value, type_text, plain in cases:
        spec = type_spec(annotation, where="t")
        assert type_string(literal_type(spec)) == type_text
        shown = value_of(to_literal(value, spec, where="t"), literal_type(spec))
        assert shown == plain
        if isinstance(plain, dict):  # dicts by sorted key, records in declaration order
            assert list(shown) == list(plain)
    assert value_of(literals_pb2.Literal()) is None
    assert type_string(types_pb2.LiteralType(blob=types_pb2.BlobType(format="csv"))) == "File[csv]"


def test_the_examples_serialize_to_the_same_bytes_in_two_processes(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from flytelike._loader import load_file, tasks_in
        from flytelike._serde import task_template

        module = load_file(sys.argv[1])
        tasks = {t.full_name: t for t in tasks_in(module).values()}
        for name in sorted(tasks):
            print(name, task_template(tasks[name]).SerializeToString(deterministic=True).hex())
        """
    )
    example = REPO_ROOT / "examples" / "train.py"
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script, str(example)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert [line.split()[0] for line in outputs[0].splitlines()] == [
        "training.heavy",
        "training.main",
        "training.train",
    ]


@pytest.mark.parametrize(
    ("gpu", "device"),
    [
        ("T4:1", "nvidia-tesla-t4"),
        ("A100:2", "nvidia-tesla-a100"),
        ("A100 80G:1", "nvidia-a100-80gb"),
    ],
)
def test_the_template_names_the_accelerator_as_node_labels_do(gpu: str, device: str) -> None:
    env = fl.TaskEnvironment(name="labels")

    @env.task(resources=fl.Resources(gpu=gpu))
    async def f() -> None: ...

    t = task_template(f)
    assert t.extended_resources.gpu_accelerator.device == device
    assert describe_template(t)["accelerator"]["device"] == fl.Resources(gpu=gpu).gpu.device  # type: ignore[union-attr]


def test_a_tpu_template_uses_the_gke_accelerator_label() -> None:
    env = fl.TaskEnvironment(name="tpu-labels")

    @env.task(resources=fl.Resources(gpu=fl.TPU("V5E", "2x4")))
    async def f() -> None: ...

    accel = task_template(f).extended_resources.gpu_accelerator
    assert (accel.device, accel.partition_size) == ("tpu-v5-lite-podslice", "2x4")
