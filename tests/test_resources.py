"""Resources: definition mistakes, quantities, requests/limits, merging and max-combination."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flytelike as fl
from flytelike import Quantity, SpecError

# --- each definition mistake is a SpecError naming the field, the value and an accepted alternative ---

DEFINITION_MISTAKES: list[tuple[str, Callable[[], object], str, object, str]] = [
    ("cpu-negative", lambda: fl.Resources(cpu=-1), "Resources.cpu", -1, "cpu='500m'"),
    ("gpu-unknown", lambda: fl.Resources(gpu="InvalidGPU:1"), "Resources.gpu", "InvalidGPU:1", "A100"),
    ("memory-GiB", lambda: fl.Resources(memory="4GiB"), "Resources.memory", "4GiB", "'4Gi'"),
    ("memory-int", lambda: fl.Resources(memory=1024), "Resources.memory", 1024, "'1024Mi'"),
    ("cpu-request>limit", lambda: fl.Resources(cpu=("2", "1")), "Resources.cpu", ("2", "1"), "request <= limit"),
    ("gpu-fraction", lambda: fl.Resources(gpu=1.5), "Resources.gpu", 1.5, "1, 2"),
    ("T4-partition", lambda: fl.GPU("T4", 1, "1g.5gb"), "GPU.partition", "1g.5gb", "partition=None"),
    ("A100-partition", lambda: fl.GPU("A100", 1, "1g.10gb"), "GPU.partition", "1g.10gb", "1g.5gb"),
    ("TPU-topology", lambda: fl.TPU("V5P", "3x3"), "TPU.partition", "3x3", "2x2x1"),
    ("swappiness", lambda: fl.Batch(swappiness=101), "Batch.swappiness", 101, "60"),
    ("ephemeral-storage", lambda: fl.Batch(ephemeral_storage=500), "Batch.ephemeral_storage", 500, "21-200"),
    ("env-name", lambda: fl.TaskEnvironment(name="Bad Name"), "TaskEnvironment.name", "Bad Name", "'bad-name'"),
]


@pytest.mark.parametrize(
    ("build", "field", "value", "accepted"),
    [case[1:] for case in DEFINITION_MISTAKES],
    ids=[case[0] for case in DEFINITION_MISTAKES],
)
def test_definition_mistakes_name_field_value_and_alternative(
    build: Callable[[], object], field: str, value: object, accepted: str
) -> None:
    with pytest.raises(SpecError) as info:
        build()
    e = info.value
    assert isinstance(e, ValueError)  # users write `except ValueError`, as the Flyte docs show
    assert e.field == field
    assert e.value == value
    message = str(e)
    assert field in message
    assert repr(value) in message
    assert e.accepted is not None
    assert accepted in e.accepted
    assert accepted in message


def test_gpu_unknown_lists_catalog_and_escape_hatches() -> None:
    with pytest.raises(SpecError) as info:
        fl.Resources(gpu="InvalidGPU:1")
    assert info.value.accepted is not None
    for hint in ("H100", "T4", "fl.Device", "register_device"):
        assert hint in info.value.accepted


def test_memory_gib_suggests_the_kubernetes_suffix() -> None:
    with pytest.raises(SpecError, match=r"did you mean 'Gi'"):
        fl.Resources(memory="4GiB")


# --- seed 004 (Flyte's Resources page), with `flyte.` written `fl.` ---

SEED_004: list[Callable[[], fl.Resources]] = [
    lambda: fl.Resources(cpu="2", memory="4Gi", gpu="A100:1", disk="10Gi"),
    lambda: fl.Resources(cpu="500m"),
    lambda: fl.Resources(cpu="2"),
    lambda: fl.Resources(cpu="1.5"),
    lambda: fl.Resources(cpu=1),
    lambda: fl.Resources(cpu=0.5),
    lambda: fl.Resources(cpu=("1", "2")),
    lambda: fl.Resources(cpu=(1, 4)),
    lambda: fl.Resources(memory="512Mi"),
    lambda: fl.Resources(memory="1Gi"),
    lambda: fl.Resources(memory="2Gi"),
    lambda: fl.Resources(memory="500M"),
    lambda: fl.Resources(memory="1G"),
    lambda: fl.Resources(memory=("1Gi", "4Gi")),
    lambda: fl.Resources(gpu=1),
    lambda: fl.Resources(gpu=4),
    lambda: fl.Resources(gpu="T4:1"),
    lambda: fl.Resources(gpu="A100:2"),
    lambda: fl.Resources(gpu="H100:8"),
    lambda: fl.Resources(gpu=fl.GPU(device="A100", quantity=2)),
    lambda: fl.Resources(gpu=fl.GPU(device="A100", quantity=1, partition="1g.5gb")),
    lambda: fl.Resources(gpu=fl.GPU(device="A100 80G", quantity=1, partition="7g.80gb")),
    lambda: fl.Resources(gpu=fl.TPU(device="V5P", partition="2x2x1")),
    lambda: fl.Resources(gpu=fl.TPU(device="V6E", partition="4x4")),
    lambda: fl.Resources(disk="10Gi"),
    lambda: fl.Resources(disk="100Gi"),
    lambda: fl.Resources(shm="1Gi"),
    lambda: fl.Resources(shm="auto"),
    lambda: fl.Resources(cpu="500m", memory="1Gi"),
    lambda: fl.Resources(cpu=("2", "4"), memory=("4Gi", "8Gi"), disk="50Gi"),
    lambda: fl.Resources(cpu="8", memory="32Gi", gpu="A100:4", disk="100Gi", shm="16Gi"),
    lambda: fl.Resources(cpu="2", memory="4Gi", gpu="T4:1", disk="20Gi"),
    lambda: fl.Resources(
        cpu="4", memory="16Gi", gpu=fl.GPU(device="A100", quantity=1, partition="3g.20gb"), disk="50Gi"
    ),
    lambda: fl.Resources(cpu="4", memory="16Gi", disk="200Gi"),
    lambda: fl.Resources(cpu=("2", "8"), memory=("8Gi", "32Gi"), disk="100Gi"),
    lambda: fl.Resources(cpu="4", memory="8Gi", gpu="A100:1"),
    lambda: fl.Resources(cpu="8", memory="16Gi", gpu="H100:2"),
    lambda: fl.Resources(gpu=fl.Device(device="custom_accelerator", quantity=2, partition="large")),
    lambda: fl.Resources(cpu="16", memory="64Gi"),
    lambda: fl.Resources(cpu=("1", "4"), memory=("2Gi", "8Gi")),
    lambda: fl.Resources(gpu="A100:4"),
    lambda: fl.Resources(cpu="4", memory="8Gi", shm="2Gi", disk="50Gi"),
    lambda: fl.Resources(cpu="1", memory="2Gi"),
    lambda: fl.Resources(cpu=("2", "4"), memory="4Gi"),
    lambda: fl.Resources(cpu=("2", "8"), memory=("4Gi", "16Gi")),
    lambda: fl.Resources(gpu=fl.GPU(device="A100", quantity=1, partition="2g.10gb")),
]


@pytest.mark.parametrize("build", SEED_004, ids=[f"seed004-{i}" for i in range(len(SEED_004))])
def test_seed_004_examples_construct(build: Callable[[], fl.Resources]) -> None:
    r = build()
    assert isinstance(r, fl.Resources)
    assert not r.is_empty()


def test_seed_004_environments_construct() -> None:
    ml = fl.TaskEnvironment(name="ml-training", resources=fl.Resources(cpu="4", memory="8Gi", gpu="A100:1"))

    @ml.task
    async def train_model(data: str) -> str:
        return "model_trained"

    reusable = fl.TaskEnvironment(
        name="reusable-ml",
        resources=fl.Resources(cpu="2", memory="4Gi", gpu="T4:1"),
        reusable=fl.ReusePolicy(replicas=2, concurrency=3, idle_ttl=300),
    )
    cached = fl.TaskEnvironment(
        name="cached-processing", resources=fl.Resources(cpu="4", memory="8Gi"), cache=fl.Cache(ttl="1h")
    )
    assert train_model.resolved().resources.gpu == fl.GPU("A100", 1)
    assert reusable.options.reusable is not None
    assert reusable.options.reusable.max_replicas == 2
    assert cached.options.cache is not None
    assert cached.options.cache.ttl is not None
    assert cached.options.cache.ttl.total_seconds() == 3600


@pytest.mark.parametrize("bad", [{"cpu": -1}, {"gpu": "InvalidGPU:1"}])
def test_seed_004_validation_examples_raise_value_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the seed page's own `except ValueError`
        fl.Resources(**bad)


# --- quantities on Resources ---


@pytest.mark.parametrize(
    ("field", "given", "canonical"),
    [
        ("memory", "1024Mi", "1Gi"),
        ("memory", "1000M", "1G"),
        ("memory", "1536Mi", "1536Mi"),
        ("memory", "0.5Ki", "512"),
        ("memory", "1e3", "1e3"),
        ("memory", "129E6", "129e6"),
        ("memory", "16000Mi", "16000Mi"),
        ("cpu", 0.5, "500m"),
        ("cpu", "0.5", "500m"),
        ("cpu", "1000m", "1"),
        ("cpu", "1.5", "1500m"),
        ("cpu", 2, "2"),
        ("cpu", "1m", "1m"),
        ("disk", "10Gi", "10Gi"),
        ("shm", "2048Mi", "2Gi"),
    ],
)
def test_canonical_strings_round_trip(field: str, given: object, canonical: str) -> None:
    amount = getattr(fl.Resources(**{field: given}), field)
    assert str(amount.request) == canonical
    assert amount.limit is None
    assert Quantity.parse(str(amount.request)) == amount.request


def test_repr_uses_canonical_strings() -> None:
    assert repr(fl.Resources(cpu=0.5, memory="1024Mi")) == "Resources(cpu='500m', memory='1Gi')"


@pytest.mark.parametrize(
    ("field", "given", "problem"),
    [
        ("cpu", "0.0005", "1m"),
        ("cpu", "1500u", "1m"),
        ("cpu", 0.0001, "1m"),
        ("cpu", "1e-4", "1m"),
        ("cpu", "10000000000000000000000000.0001", "1m"),
        ("memory", "1.5", "whole number of bytes"),
        ("shm", "0.5", "whole number of bytes"),
        ("disk", "100m", "whole number of bytes"),
        ("memory", " 1Gi", "whitespace"),
        ("memory", "1Gi ", "whitespace"),
        ("memory", "1 Gi", "whitespace"),
        ("cpu", "1 ", "whitespace"),
        ("memory", "1gb", "unknown suffix"),
        ("memory", "lots", "number"),
        ("memory", "-1Gi", "negative"),
        ("cpu", -0.5, "negative"),
        ("cpu", float("nan"), "finite"),
        ("cpu", float("inf"), "finite"),
        ("cpu", True, "cpu"),
        ("memory", True, "size"),
        ("disk", 1024, "ambiguous"),
        ("shm", 1024, "ambiguous"),
        ("memory", 1.5, "ambiguous"),
        ("cpu", {"a": 1}, "cpu"),
    ],
)
def test_bad_quantities_rejected(field: str, given: object, problem: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.Resources(**{field: given})
    assert info.value.field == f"Resources.{field}"
    assert problem in info.value.problem
    assert info.value.accepted


def test_huge_whole_cpu_is_a_spec_error() -> None:
    # Regression: the 1m check used Decimal % in a 28-digit context and raised InvalidOperation here; such a cpu
    # is now refused as larger than Kubernetes (and the run records) can hold.
    with pytest.raises(SpecError) as info:
        fl.Resources(cpu="10000000000000000000000000")
    assert info.value.field == "Resources.cpu"
    assert fl.Resources(cpu="9223372036854775").cpu is not None  # the largest cpu in whole millicores fits


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gpu": 10**30}, "Resources.gpu"),
        ({"gpu": 1e30}, "Resources.gpu"),
        ({"cpu": "1e400"}, "Resources.cpu"),
        ({"cpu": "1e20"}, "Resources.cpu"),
        ({"memory": "1e400"}, "Resources.memory"),
        ({"memory": "1e19"}, "Resources.memory"),
        ({"disk": "1e400"}, "Resources.disk"),
        ({"shm": "1e30"}, "Resources.shm"),
        ({"memory": ("1Gi", "1e400")}, "Resources.memory"),
    ],
)
def test_amounts_beyond_int64_are_refused_when_defined(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.Resources(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.accepted
    assert "larger than" in info.value.problem or "more accelerators" in info.value.problem


def test_a_huge_gpu_count_leaves_no_run_recorded(tmp_path: Path) -> None:
    env = fl.TaskEnvironment(name="huge-gpu")
    with pytest.raises(SpecError):

        @env.task(resources=fl.Resources(gpu=10**30))
        async def f() -> None: ...

    assert not (tmp_path / "home" / "runs.sqlite3").exists()


@pytest.mark.parametrize(
    ("field", "given", "req", "limit"),
    [
        ("cpu", ("1", "2"), "1", "2"),
        ("cpu", (1, 4), "1", "4"),
        ("cpu", (0.5, "1"), "500m", "1"),
        ("memory", ("1Gi", "4Gi"), "1Gi", "4Gi"),
        ("memory", ["1Gi", "1024Mi"], "1Gi", "1Gi"),
        ("disk", ("10Gi", "20Gi"), "10Gi", "20Gi"),
    ],
)
def test_request_limit_pairs(field: str, given: object, req: str, limit: str) -> None:
    amount = getattr(fl.Resources(**{field: given}), field)
    assert (str(amount.request), str(amount.limit)) == (req, limit)
    assert amount.upper() == Quantity.parse(limit)


@pytest.mark.parametrize(
    ("field", "given"),
    [
        ("cpu", ("2", "1")),
        ("memory", ("2Gi", "1Gi")),
        ("memory", ("16Gi", "16000Mi")),  # compared with units understood
        ("cpu", ("1",)),
        ("cpu", (1, 2, 3)),
        ("shm", ("1Gi", "2Gi")),
        ("gpu", (1, 2)),
        ("cpu", ("1", "-2")),
    ],
)
def test_bad_pairs_rejected(field: str, given: object) -> None:
    with pytest.raises(SpecError) as info:
        fl.Resources(**{field: given})
    assert info.value.field == f"Resources.{field}"


def test_shm_auto_in_any_case() -> None:
    assert fl.Resources(shm="auto").shm == "auto"
    assert fl.Resources(shm="AUTO").shm == "auto"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (0, 0),
        (2, 2),
        (2.0, 2),
        ("A100", fl.GPU("A100", 1)),
        ("a100:2", fl.GPU("A100", 2)),
        (fl.GPU("H100", 2), fl.GPU("H100", 2)),
    ],
)
def test_gpu_forms(given: object, expected: object) -> None:
    assert fl.Resources(gpu=given).gpu == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("given", [True, False, -1, 1.5, (1, 2), [1], "A100:0", "A100:9", "A100:x", "A100:"])
def test_bad_gpu_rejected(given: object) -> None:
    with pytest.raises(SpecError) as info:
        fl.Resources(gpu=given)  # type: ignore[arg-type]
    assert info.value.field == "Resources.gpu"
    assert info.value.value == given
    assert info.value.accepted


def test_gpu_count_counts_tpu_chips() -> None:
    assert fl.Resources().gpu_count == 0
    assert fl.Resources(gpu=3).gpu_count == 3
    assert fl.Resources(gpu="A100:2").gpu_count == 2
    assert fl.Resources(gpu=fl.TPU("V5P", "2x2x2")).gpu_count == 8


def test_resources_pickle_round_trip() -> None:
    r = fl.Resources(cpu=("1", "2"), memory="4Gi", gpu="A100:1", disk="10Gi", shm="auto")
    back = pickle.loads(pickle.dumps(r))
    assert back == r
    assert repr(back) == repr(r)


# --- merging (env <- task <- override) at the Resources level ---


def test_merge_is_field_by_field() -> None:
    base = fl.Resources(cpu=2, memory="4Gi", gpu="A100:1")
    merged = base.merge(fl.Resources(memory="8Gi"))
    assert merged.cpu == base.cpu
    assert merged.gpu == fl.GPU("A100", 1)
    assert merged.memory is not None
    assert str(merged.memory.request) == "8Gi"
    assert base.merge(None) is base


def test_merge_zero_resets() -> None:
    merged = fl.Resources(cpu=2, gpu="A100:1").merge(fl.Resources(cpu=0, gpu=0))
    assert merged.gpu == 0
    assert merged.gpu_count == 0
    assert merged.cpu is not None
    assert merged.cpu.is_zero


# --- max-combination with platform values ---


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("16000Mi", "16Gi", "16Gi"),
        ("16Gi", "16000Mi", "16Gi"),
        ("1G", "1000Mi", "1000Mi"),
        ("1Gi", "1G", "1Gi"),
    ],
)
def test_combine_max_is_unit_aware(a: str, b: str, expected: str) -> None:
    combined = fl.Resources(memory=a).combine_max(fl.Resources(memory=b))
    assert combined.memory is not None
    assert str(combined.memory.request) == expected


def test_combine_max_keeps_one_sided_fields_and_takes_larger() -> None:
    a = fl.Resources(cpu=2, memory="16000Mi", disk="10Gi")
    b = fl.Resources(cpu=4, memory="8000Mi", shm="1Gi")
    c = a.combine_max(b)
    assert repr(c) == "Resources(cpu='4', memory='16000Mi', disk='10Gi', shm='1Gi')"


def test_combine_max_raises_a_limit_below_the_new_request() -> None:
    c = fl.Resources(cpu=("1", "2")).combine_max(fl.Resources(cpu=4))
    assert c.cpu is not None
    assert (str(c.cpu.request), str(c.cpu.limit)) == ("4", "4")


def test_combine_max_shm_auto_wins() -> None:
    assert fl.Resources(shm="1Gi").combine_max(fl.Resources(shm="auto")).shm == "auto"
    assert fl.Resources(shm="auto").combine_max(fl.Resources(shm="64Gi")).shm == "auto"


def test_combine_max_gpus() -> None:
    def gpu(a: object, b: object) -> object:
        return fl.Resources(gpu=a).combine_max(fl.Resources(gpu=b)).gpu  # type: ignore[arg-type]

    assert gpu(1, 2) == 2
    assert gpu("A100:1", 2) == fl.GPU("A100", 2)
    assert gpu(4, "A100:2") == fl.GPU("A100", 4)
    assert gpu("A100:2", 1) == fl.GPU("A100", 2)
    assert gpu("A100:1", "A100:4") == fl.GPU("A100", 4)
    assert gpu(None, "T4:1") == fl.GPU("T4", 1)
    with pytest.raises(SpecError, match="two different accelerators"):
        gpu("A100:1", "H100:1")
    with pytest.raises(SpecError, match="TPU"):
        gpu(fl.TPU("V5P", "2x2x1"), 8)
