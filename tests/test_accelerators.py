"""Accelerators: the device catalog, GPU/TPU/Device requests, the "NAME:N" shorthand, extensions, and the
catalog as a scoped, immutable value."""

from __future__ import annotations

import asyncio
import doctest
import math
import pickle
import re
import threading
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st

import flytelike as fl
from flytelike import DeviceClass, DeviceSpec, SpecError, _config
from flytelike._accelerators import BUILTIN_CATALOG, Catalog, _catalog, parse_accelerator
from flytelike._config import default_settings, load_settings
from flytelike.errors import ConfigError

COUNTED_GPUS = ["A10", "A10G", "A100", "A100_80G", "B200", "H100", "H200", "L4", "L40s", "V100", "T4"]

MIG = {
    "A100": ["1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"],
    "A100_80G": ["1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"],
    "H100": ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"],
    "H200": ["1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"],
}
ALL_PROFILES = sorted({p for profiles in MIG.values() for p in profiles})

TPU_2D = ["1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16"]
TPU_3D = ["2x2x1", "2x2x2", "2x4x4", "4x4x4", "4x4x8", "4x8x8", "8x8x8", "8x8x16", "8x16x16", "16x16x16", "16x16x24"]
TOPOLOGIES = {"V5E": TPU_2D, "V6E": TPU_2D, "V5P": TPU_3D}


def test_catalog_starts_pristine(pristine_device_names: frozenset[str]) -> None:
    # Fails if another test's registration or config extension leaked through the conftest fixture.
    assert {spec.name for spec in fl.catalog()} == pristine_device_names


def test_catalog_holds_the_design_devices() -> None:
    names = {spec.name for spec in fl.catalog()}
    assert {*COUNTED_GPUS, "A2", "V5E", "V6E", "V5P"} <= names
    assert {"Inf1", "Inf2", "Trn1", "Trn1n", "Trn2", "MI210", "MI250X", "MI300X", "Gaudi"} <= names


@pytest.mark.parametrize("device", COUNTED_GPUS)
@pytest.mark.parametrize("count", range(1, 9))
def test_counted_gpus_take_1_to_8(device: str, count: int) -> None:
    gpu = fl.GPU(device, count)
    assert (gpu.device, gpu.quantity, gpu.partition) == (device, count, None)
    assert gpu.device_class is DeviceClass.NVIDIA_GPU
    assert fl.Resources(gpu=f"{device}:{count}").gpu == gpu


@pytest.mark.parametrize("device", [*COUNTED_GPUS, "A2"])
@pytest.mark.parametrize("count", [0, 9, -1])
def test_out_of_range_counts_rejected(device: str, count: int) -> None:
    with pytest.raises(SpecError) as info:
        fl.GPU(device, count)
    assert info.value.field == "GPU.quantity"
    assert info.value.value == count
    assert info.value.accepted


def test_a2_takes_only_one() -> None:
    assert fl.GPU("A2", 1).quantity == 1
    with pytest.raises(SpecError, match="at most 1") as info:
        fl.GPU("A2", 2)
    assert info.value.accepted == "1-1"


@pytest.mark.parametrize("count", [1.5, True, "2", None])
def test_counts_are_whole_numbers(count: object) -> None:
    with pytest.raises(SpecError):
        fl.GPU("A100", count)  # type: ignore[arg-type]


def test_integral_float_count_accepted() -> None:
    assert fl.GPU("A100", 2.0).quantity == 2  # type: ignore[arg-type]


@pytest.mark.parametrize(("device", "profile"), [(d, p) for d, profiles in MIG.items() for p in profiles])
def test_mig_profiles_accepted_on_their_device(device: str, profile: str) -> None:
    gpu = fl.GPU(device, 1, profile)
    assert (gpu.device, gpu.partition) == (device, profile)


@pytest.mark.parametrize(
    ("device", "profile"),
    [(d, p) for d in [*MIG, "T4", "L4", "B200"] for p in ALL_PROFILES if p not in MIG.get(d, [])],
)
def test_mig_profiles_rejected_on_other_devices(device: str, profile: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.GPU(device, 1, profile)
    e = info.value
    assert (e.field, e.value) == ("GPU.partition", profile)
    assert e.accepted is not None
    if device in MIG:
        assert e.accepted.split(", ") == MIG[device]  # names the profiles this device does have
    else:
        assert "does not support MIG" in e.problem
        assert set(MIG) <= set(re.findall(r"[A-Z0-9_]+", e.accepted))


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("A100 80G", "A100_80G"),
        ("a100 80g", "A100_80G"),
        ("A100-80G", "A100_80G"),
        ("a100", "A100"),
        ("h100", "H100"),
        ("l40S", "L40s"),
        ("L40S", "L40s"),
        ("t4", "T4"),
        ("mi300x", "MI300X"),
        ("gaudi1", "Gaudi"),
    ],
)
def test_names_are_case_and_separator_insensitive(spelling: str, canonical: str) -> None:
    assert fl.GPU(spelling).device == canonical
    assert fl.Resources(gpu=f"{spelling}:1").gpu == fl.GPU(canonical)


@pytest.mark.parametrize(
    ("device", "device_class"),
    [
        ("Inf2", DeviceClass.AMAZON_NEURON),
        ("Trn1", DeviceClass.AMAZON_NEURON),
        ("MI300X", DeviceClass.AMD_GPU),
        ("MI210", DeviceClass.AMD_GPU),
        ("Gaudi2", DeviceClass.HABANA_GAUDI),
        ("H100", DeviceClass.NVIDIA_GPU),
    ],
)
def test_device_classes(device: str, device_class: DeviceClass) -> None:
    assert fl.GPU(device).device_class is device_class


@pytest.mark.parametrize(("device", "topology"), [(d, t) for d, ts in TOPOLOGIES.items() for t in ts])
def test_tpu_chip_count_follows_topology(device: str, topology: str) -> None:
    tpu = fl.TPU(device, topology)
    assert tpu.quantity == math.prod(int(n) for n in topology.split("x"))
    assert tpu.device_class is DeviceClass.GOOGLE_TPU
    assert fl.TPU(device.lower(), topology) == tpu


def test_tpu_examples() -> None:
    assert fl.TPU("V5P", "2x2x2").quantity == 8
    assert fl.TPU("V6E", "4x4").quantity == 16


@pytest.mark.parametrize(
    ("device", "topology"), [("V5P", "3x3"), ("V5P", "2x2"), ("V5E", "2x2x1"), ("V6E", "3x3"), ("V5E", "")]
)
def test_tpu_wrong_topology_rejected(device: str, topology: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.TPU(device, topology)
    assert (info.value.field, info.value.value) == ("TPU.partition", topology)
    assert info.value.accepted == ", ".join(TOPOLOGIES[device])


def test_tpu_without_topology_rejected() -> None:
    with pytest.raises(SpecError, match="needs a slice topology") as info:
        fl.TPU("V5P")
    assert info.value.accepted is not None
    assert "2x2x1" in info.value.accepted


def test_tpu_and_gpu_are_not_interchangeable() -> None:
    with pytest.raises(SpecError) as info:
        fl.TPU("A100", "2x2")
    assert info.value.field == "TPU.device"
    with pytest.raises(SpecError) as info:
        fl.GPU("V5P")
    assert info.value.field == "GPU.device"


@pytest.mark.parametrize("device", ["V5P", "V5E", "v6e"])
def test_tpu_shorthand_string_rejected_with_a_working_hint(device: str) -> None:
    with pytest.raises(SpecError, match="takes a topology") as info:
        fl.Resources(gpu=f"{device}:2")
    assert info.value.accepted is not None
    hint = re.search(r"fl\.TPU\('(\w+)', '([\dx]+)'\)", info.value.accepted)
    assert hint is not None, info.value.accepted
    fl.TPU(hint.group(1), hint.group(2))  # the suggestion itself must construct


def test_device_accepts_devices_outside_the_catalog() -> None:
    d = fl.Device("custom_accelerator", quantity=2, partition="large")
    assert (d.device, d.quantity, d.partition, d.device_class) == (
        "custom_accelerator",
        2,
        "large",
        DeviceClass.NVIDIA_GPU,
    )
    assert fl.Device("x", 100).quantity == 100  # no catalog maximum
    assert fl.Device("x", device_class="google-tpu").device_class is DeviceClass.GOOGLE_TPU  # type: ignore[arg-type]
    assert fl.Resources(gpu=d).gpu == d


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"device": "bad name!"}, "Device.device"),
        ({"device": ""}, "Device.device"),
        ({"device": "x", "quantity": 0}, "Device.quantity"),
        ({"device": "x", "quantity": 1.5}, "Device.quantity"),
        ({"device": "x", "partition": " "}, "Device.partition"),
        ({"device": "x", "device_class": "fpga"}, "Device.device_class"),
    ],
)
def test_device_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.Device(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_gpu_equality_and_pickle() -> None:
    import pickle

    assert fl.GPU("A100", 2) == fl.GPU("a100", 2)
    assert hash(fl.GPU("A100", 2)) == hash(fl.GPU("A100", 2))
    assert fl.GPU("A100", 2) != fl.GPU("A100", 1)
    for value in (fl.GPU("A100", 2, None), fl.GPU("H100", 1, "1g.10gb"), fl.TPU("V5P", "2x2x1")):
        assert pickle.loads(pickle.dumps(value)) == value


# --- the "NAME:N" shorthand ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [("A100:2", fl.GPU("A100", 2)), ("A100", fl.GPU("A100", 1)), ("h100:8", fl.GPU("H100", 8))],
)
def test_shorthand(text: str, expected: fl.GPU) -> None:
    assert parse_accelerator(text) == expected


@pytest.mark.parametrize("text", ["A100:", "A100:x", "A100:-1", "A100:1.5", "A100:0", "A100:9", ":2", "", "Nope:1"])
def test_bad_shorthand(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_accelerator(text)
    assert (info.value.field, info.value.value) == ("Resources.gpu", text)


@given(st.text(max_size=30))
def test_shorthand_parser_raises_only_spec_errors(text: str) -> None:
    try:
        result = parse_accelerator(text)
    except SpecError:
        return
    assert isinstance(result, fl.GPU)


@given(
    st.sampled_from([*COUNTED_GPUS, "A2", "MI300X", "Inf2"]),
    st.integers(min_value=-3, max_value=20),
    st.sampled_from([str.upper, str.lower, str]),
)
def test_shorthand_counts(device: str, count: int, case: object) -> None:
    text = f"{case(device)}:{count}"  # type: ignore[operator]
    maximum = {"A2": 1, "Inf2": 12}.get(device, 8)
    if 1 <= count <= maximum:
        assert parse_accelerator(text) == fl.GPU(device, count)
    else:
        with pytest.raises(SpecError):
            parse_accelerator(text)


# --- extending the catalog ---


def test_register_device_adds_a_device() -> None:
    spec = fl.register_device("RTX6000", device_class="nvidia-gpu", max_quantity=4, aliases=["RTX 6000"])
    assert spec.name == "RTX6000"
    assert fl.GPU("rtx 6000", 4).device == "RTX6000"
    assert "RTX6000" in [d.name for d in fl.catalog()]
    with pytest.raises(SpecError, match="at most 4"):
        fl.GPU("RTX6000", 5)
    assert fl.Resources(gpu="RTX6000:2").gpu == fl.GPU("RTX6000", 2)


def test_register_device_extends_mig_profiles_without_dropping_any() -> None:
    fl.register_device("A100", device_class=DeviceClass.NVIDIA_GPU, partitions=["1g.6gb"])
    assert fl.GPU("A100", 1, "1g.6gb").partition == "1g.6gb"
    for profile in MIG["A100"]:
        assert fl.GPU("A100", 1, profile).partition == profile
    with pytest.raises(SpecError):
        fl.GPU("H100", 1, "1g.6gb")


def test_register_device_cannot_change_a_device_class() -> None:
    with pytest.raises(SpecError) as info:
        fl.register_device("A100", device_class="amd-gpu")
    assert info.value.field == "accelerators.device_class"


@pytest.mark.parametrize(
    ("name", "kwargs", "field"),
    [
        ("", {"device_class": "nvidia-gpu"}, "register_device.name"),
        ("bad!name", {"device_class": "nvidia-gpu"}, "register_device.name"),
        ("X1", {"device_class": "fpga"}, "register_device.device_class"),
        ("X1", {"device_class": "nvidia-gpu", "max_quantity": 0}, "register_device.max_quantity"),
        ("X1", {"device_class": "nvidia-gpu", "partitions": ["a b"]}, "register_device.partitions"),
    ],
)
def test_register_device_validation(name: str, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.register_device(name, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_config_file_extends_the_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_config: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flytelike.toml").write_text(
        "[[accelerators]]\n"
        'name = "RTX4090"\n'
        'device_class = "nvidia-gpu"\n'
        "max_quantity = 4\n"
        "\n"
        "[[accelerators]]\n"
        'name = "A100"\n'
        'partitions = ["1g.6gb"]\n'
    )
    monkeypatch.chdir(project)
    monkeypatch.setenv("FLYTELIKE_HOME", str(isolated_config))
    assert fl.GPU("RTX4090", 4).device == "RTX4090"
    assert fl.GPU("A100", 1, "1g.6gb").partition == "1g.6gb"
    assert fl.Resources(gpu="rtx4090:2").gpu == fl.GPU("RTX4090", 2)
    with pytest.raises(SpecError, match="at most 4"):
        fl.GPU("RTX4090", 5)


def test_home_config_file_extends_the_catalog(isolated_config: Path) -> None:
    (isolated_config / "config.toml").write_text(
        '[[accelerators]]\nname = "TPU7X"\ndevice_class = "google-tpu"\nmax_quantity = 64\npartitions = ["2x2x4"]\n'
    )
    assert fl.TPU("tpu7x", "2x2x4").quantity == 16


def test_without_config_unknown_devices_stay_unknown() -> None:
    with pytest.raises(SpecError, match="unknown accelerator"):
        fl.GPU("RTX4090")
    with pytest.raises(SpecError):
        fl.GPU("A100", 1, "1g.6gb")


def test_config_can_raise_a_builtin_maximum() -> None:
    # Regression: extensions were read only when a name or partition missed, so a raised maximum applied or not
    # depending on whether some earlier lookup had missed.
    Path("flytelike.toml").write_text('[[accelerators]]\nname = "A100"\nmax_quantity = 16\n')
    assert fl.GPU("A100", 16).quantity == 16
    assert fl.Resources(gpu="A100:12").gpu_count == 12
    with pytest.raises(SpecError, match="at most 16"):
        fl.GPU("A100", 17)


# --- the catalog is a value: scoped, never changed in place ---


def test_register_device_changes_neither_the_settings_nor_the_builtin_catalog() -> None:
    before = fl.catalog()
    fl.register_device("RTX6000", device_class="nvidia-gpu")
    assert "RTX6000" in fl.catalog()
    assert "RTX6000" not in before  # the catalog it extended is unchanged
    assert "RTX6000" not in BUILTIN_CATALOG
    assert "RTX6000" not in load_settings().catalog
    assert "RTX6000" not in default_settings().catalog


def test_register_device_returns_the_merged_entry() -> None:
    spec = fl.register_device("a100", device_class="nvidia-gpu", partitions=["1g.6gb"], aliases=["ampere"])
    assert spec.name == "A100"
    assert spec.partitions == (*MIG["A100"], "1g.6gb")
    assert fl.GPU("ampere").device == "A100"


def test_use_puts_a_catalog_in_effect_for_a_block_only() -> None:
    mine = fl.catalog().with_device("RTX6000", device_class="nvidia-gpu", max_quantity=4)
    with mine.use() as inside:
        assert inside is mine
        assert fl.catalog() is mine
        assert fl.GPU("RTX6000", 4).quantity == 4
        with pytest.raises(RuntimeError), mine.extended().use():
            raise RuntimeError("the block fails")
        assert fl.catalog() is mine
    with pytest.raises(SpecError, match="unknown accelerator"):
        fl.GPU("RTX6000")


def test_use_replaces_a_registration_for_the_block() -> None:
    fl.register_device("RTX6000", device_class="nvidia-gpu")
    with BUILTIN_CATALOG.use(), pytest.raises(SpecError):
        fl.GPU("RTX6000")
    assert fl.GPU("RTX6000").device == "RTX6000"


def test_a_registration_in_another_thread_is_invisible_here() -> None:
    def register() -> None:
        fl.register_device("RTX6000", device_class="nvidia-gpu")
        seen.append("RTX6000" in fl.catalog())

    seen: list[bool] = []
    thread = threading.Thread(target=register)
    thread.start()
    thread.join()
    assert seen == [True]
    assert "RTX6000" not in fl.catalog()


async def test_to_thread_calls_see_the_catalog_of_their_caller() -> None:
    fl.register_device("RTX6000", device_class="nvidia-gpu")
    assert await asyncio.to_thread(lambda: fl.GPU("RTX6000").device) == "RTX6000"
    assert await anyio.to_thread.run_sync(lambda: "RTX6000" in fl.catalog())


cat_env = fl.TaskEnvironment(name="catalogs")


@cat_env.task
async def registers(device: str) -> list[str]:
    """Registers a device, lets other runs interleave, and reports the registered devices it can see."""
    fl.register_device(device, device_class="nvidia-gpu")
    await asyncio.sleep(0.02)
    return [n for n in fl.catalog().names() if n.startswith("X")]


@cat_env.task
async def sees(device: str) -> bool:
    return device in fl.catalog()


async def test_two_runs_in_one_process_never_see_each_others_devices() -> None:
    results: dict[str, list[str]] = {}

    async def one(device: str) -> None:
        results[device] = (await fl.run_async(registers, device)).outputs

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "XA1")
        tg.start_soon(one, "XB1")
    assert results == {"XA1": ["XA1"], "XB1": ["XB1"]}
    assert (await fl.run_async(sees, "XA1")).outputs is False
    assert "XA1" not in fl.catalog()


def test_a_device_registered_by_a_run_is_gone_after_it() -> None:
    assert fl.run(registers, "XC1").outputs == ["XC1"]
    assert fl.run(sees, "XC1").outputs is False
    with pytest.raises(SpecError):
        fl.GPU("XC1")


def test_runs_see_the_devices_registered_before_them() -> None:
    fl.register_device("XD1", device_class="nvidia-gpu")
    assert fl.run(sees, "XD1").outputs is True


def test_catalog_is_an_immutable_sequence() -> None:
    table = fl.catalog()
    assert isinstance(table, Catalog)
    assert len(table) == len(list(table)) == len(BUILTIN_CATALOG)
    assert table[0] == next(iter(table))
    assert "a100 80g" in table  # names in any accepted spelling
    assert table.get("A100 80G") in table  # and entries
    assert table.get("nope") is None
    assert table.names(DeviceClass.GOOGLE_TPU) == ["V5E", "V5P", "V6E"]
    with pytest.raises(AttributeError, match="immutable"):
        table._specs = ()  # type: ignore[misc]
    bigger = table.with_device("RTX6000", device_class="nvidia-gpu")
    assert len(bigger) == len(table) + 1
    assert table == BUILTIN_CATALOG != bigger
    assert hash(table) == hash(Catalog(reversed(list(table))))  # order of construction does not matter
    assert pickle.loads(pickle.dumps(bigger)) == bigger
    assert table.extended() is table


def test_extending_a_catalog_cannot_change_a_device_class() -> None:
    with pytest.raises(SpecError) as info:
        BUILTIN_CATALOG.with_device("A100", device_class="amd-gpu")
    assert info.value.field == "accelerators.device_class"


@pytest.mark.parametrize(
    ("name", "kwargs", "field"),
    [
        ("bad!name", {"device_class": "nvidia-gpu"}, "Catalog.with_device.name"),
        ("X1", {"device_class": "fpga"}, "Catalog.with_device.device_class"),
        ("X1", {"device_class": "nvidia-gpu", "max_quantity": True}, "Catalog.with_device.max_quantity"),
        ("X1", {"device_class": "nvidia-gpu", "partitions": "1g.5gb"}, "Catalog.with_device.partitions"),
        ("X1", {"device_class": "nvidia-gpu", "aliases": [""]}, "Catalog.with_device.aliases"),
    ],
)
def test_with_device_validation(name: str, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        BUILTIN_CATALOG.with_device(name, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_settings_carry_their_own_catalog() -> None:
    a = load_settings(accelerators=[{"name": "XE1"}])
    b = load_settings(accelerators=[{"name": "XF1", "device_class": "amd-gpu"}])
    assert "XE1" in a.catalog
    assert "XE1" not in b.catalog
    assert b.catalog.get("xf1") == DeviceSpec("XF1", DeviceClass.AMD_GPU)
    assert "XE1" not in fl.catalog()
    with b.catalog.use():
        assert fl.GPU("XF1").device_class is DeviceClass.AMD_GPU


def test_a_config_entry_that_contradicts_the_catalog_is_a_config_error() -> None:
    Path("flytelike.toml").write_text(
        '[[accelerators]]\nname = "X1"\n\n[[accelerators]]\nname = "a100"\ndevice_class = "amd-gpu"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == "accelerators.1.device_class"
    assert "flytelike.toml" in info.value.problem
    # A request the built-in catalog cannot answer consults the settings, and reports the same error ...
    with pytest.raises(ConfigError, match=r"flytelike\.toml"):
        fl.GPU("X1")
    # ... while one it answers gets that answer: the configuration could only have added to it.
    assert fl.GPU("A100").device_class is DeviceClass.NVIDIA_GPU


def test_the_default_settings_are_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = _config.load_settings

    def counting() -> _config.Settings:
        calls.append(1)
        return real()

    monkeypatch.setattr(_config, "load_settings", counting)
    for _ in range(3):
        fl.GPU("A100", 2)
        fl.Resources(gpu="H100:1")
        fl.TPU("V5P", "2x2x1")
    assert calls == []  # the built-in catalog answers these: the configuration is not even read
    for _ in range(3):
        with pytest.raises(SpecError):
            fl.GPU("RTX4090")
    assert len(calls) == 1  # read once; looked at again (unchanged) but not re-read
    assert fl.catalog() is default_settings().catalog
    assert len(calls) == 1
    Path("flytelike.toml").write_text('[[accelerators]]\nname = "RTX4090"\n')
    assert fl.GPU("RTX4090").device == "RTX4090"  # ... until the configuration changes
    assert fl.GPU("rtx4090").device == "RTX4090"
    assert len(calls) == 2


def test_pickled_requests_keep_the_device_they_were_checked_against() -> None:
    with BUILTIN_CATALOG.with_device("RTX6000", device_class="amd-gpu", partitions=["half"]).use():
        gpu = fl.GPU("RTX6000", 2, "half")
    restored = pickle.loads(pickle.dumps(gpu))
    assert restored == gpu
    assert restored.device_class is DeviceClass.AMD_GPU
    assert repr(restored) == "GPU(device='RTX6000', quantity=2, partition='half')"


def test_the_catalog_module_examples_run() -> None:
    result = doctest.testmod(_catalog, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_an_alias_cannot_take_another_devices_name() -> None:
    with pytest.raises(SpecError) as info:
        fl.register_device("X1", device_class="nvidia-gpu", aliases=["a100"])
    assert (info.value.field, info.value.value) == ("accelerators.aliases", "a100")
    assert fl.GPU("A100").device == "A100"
    Path("flytelike.toml").write_text('[[accelerators]]\nname = "X1"\naliases = ["T4"]\n')
    with pytest.raises(ConfigError) as config_info:
        load_settings()
    assert config_info.value.field == "accelerators.0.aliases"


def test_a_config_alias_taking_a100_is_an_error_not_a_new_meaning_of_a100() -> None:
    Path("flytelike.toml").write_text('[[accelerators]]\nname = "X1"\naliases = ["A100"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert (info.value.field, info.value.value) == ("accelerators.0.aliases", "A100")
    assert "already names A100" in info.value.problem
    with pytest.raises((ConfigError, SpecError), match="already names A100"):
        fl.Resources(gpu="X1:1")  # the catalog of these settings is refused as a whole


@pytest.mark.parametrize(
    ("name", "device_class", "most"),
    [
        ("RTX PRO 6000", DeviceClass.NVIDIA_GPU, 1),
        ("GB10", DeviceClass.NVIDIA_GPU, 1),
        ("Trn2u", DeviceClass.AMAZON_NEURON, 16),
        ("MI350X", DeviceClass.AMD_GPU, 8),
        ("MI355X", DeviceClass.AMD_GPU, 8),
        ("Gaudi1", DeviceClass.HABANA_GAUDI, 8),
    ],
)
def test_the_catalog_has_flyte_2s_devices(name: str, device_class: DeviceClass, most: int) -> None:
    spec = fl.catalog().get(name)
    assert spec is not None
    assert (spec.device_class, spec.max_quantity) == (device_class, most)
    assert fl.Resources(gpu=f"{name}:1").gpu_count == 1


def test_every_device_of_flyte_2s_catalog_is_known() -> None:
    flyte2 = [
        "A2",
        "A10",
        "A10G",
        "A100",
        "B200",
        "H100",
        "H200",
        "L4",
        "L40s",
        "T4",
        "V100",
        "GB10",
        "V5P",
        "V6E",
        "Inf1",
        "Inf2",
        "Trn1",
        "Trn1n",
        "Trn2",
        "Trn2u",
        "MI100",
        "MI210",
        "MI250",
        "MI250X",
        "MI300A",
        "MI300X",
        "MI325X",
        "MI350X",
        "MI355X",
        "Gaudi1",
        "A100 80G",
        "RTX PRO 6000",
    ]
    assert [n for n in flyte2 if n not in fl.catalog()] == []


@pytest.mark.parametrize(
    ("request_", "label"),
    [
        (lambda: fl.GPU("T4"), "nvidia-tesla-t4"),
        (lambda: fl.GPU("A100", 1, "1g.5gb"), "nvidia-tesla-a100"),
        (lambda: fl.GPU("A100 80G"), "nvidia-a100-80gb"),
        (lambda: fl.GPU("H100"), "nvidia-h100-80gb"),
        (lambda: fl.GPU("L4"), "nvidia-l4"),
        (lambda: fl.TPU("V5E", "2x4"), "tpu-v5-lite-podslice"),
        (lambda: fl.TPU("V5P", "2x2x1"), "tpu-v5p-slice"),
        (lambda: fl.GPU("MI300X"), "amd-mi300x"),
        (lambda: fl.Device("custom-npu"), "custom-npu"),
    ],
)
def test_requests_carry_the_node_label_spelling(request_: object, label: str) -> None:
    device = request_()  # type: ignore[operator]
    assert device.label == label
    assert pickle.loads(pickle.dumps(device)).label == label


def test_a_configured_device_names_its_node_label() -> None:
    Path("flytelike.toml").write_text('[[accelerators]]\nname = "RTX6000"\nlabel = "nvidia-rtx-6000-ada"\n')
    assert fl.GPU("RTX6000").label == "nvidia-rtx-6000-ada"
    with pytest.raises(SpecError) as info:
        fl.register_device("X2", device_class="nvidia-gpu", label="not a label")
    assert info.value.field == "register_device.label"
