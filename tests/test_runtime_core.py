"""The runtime core: one Runtime for several runs, events, cache keys by content, retry arithmetic, GPU probing."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

import flytelike as fl
from flytelike._backends.local import _capacity
from flytelike._executor import ExecTask, Values
from flytelike._executor._cache_key import cache_key
from flytelike._retries import escalate_memory
from flytelike._runtime import Runtime
from flytelike._serde import encode_values, task_template

env = fl.TaskEnvironment(name="core")
CALLS: list[str] = []


@env.task
async def leaf(i: int) -> int:
    await asyncio.sleep(0.01)
    return i * i


@env.task
async def fan(n: int) -> int:
    return sum(await asyncio.gather(*(leaf(i) for i in range(n))))


@env.task(cache=fl.Cache())
async def digest(data: fl.File) -> str:
    CALLS.append(data.path)
    return Path(data).read_text()


@env.task(resources=fl.Resources(cpu=2))
async def two_cores(i: int) -> float:
    started = asyncio.get_running_loop().time()
    await asyncio.sleep(0.1)
    return started


# --- one Runtime, several runs --------------------------------------------------------------------------------


async def test_several_runs_share_one_runtime() -> None:
    async with Runtime() as runtime:
        first = await runtime.start(fan, 5)
        second = await runtime.start(fan, 3)
        assert first.id != second.id
        assert await first.result() == sum(i * i for i in range(5))
        assert await second.result() == sum(i * i for i in range(3))
    assert (first.state, second.state) == ("succeeded", "succeeded")


async def test_runs_of_one_runtime_share_this_machines_capacity() -> None:
    capacity = _capacity.Capacity(2000, 2**30, 0)
    async with Runtime(backend_options={"local": {"capacity": capacity}}) as runtime:
        handles = [await runtime.start(two_cores, i) for i in range(2)]
        a, b = [await h.result() for h in handles]
    assert abs(a - b) >= 0.09  # each needs both cores: the second run waited for the first


async def test_a_handle_cancels_its_run_only() -> None:
    async with Runtime() as runtime:
        slow = await runtime.start(fan, 3)
        slow.cancel()
        quick = await runtime.start(fan, 2)
        with pytest.raises(fl.errors.CancelledError):
            await slow.result()
        assert await quick.result() == 1


# --- events ---------------------------------------------------------------------------------------------------


async def test_every_transition_is_an_event_numbered_per_run() -> None:
    async with Runtime() as runtime:
        handle = await runtime.start(fan, 3)
        events = [e async for e in handle.events()]
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))
    by_action: dict[str, list[str]] = {}
    for e in events:
        assert e.run_id == handle.id
        by_action.setdefault(e.action, []).append(str(e.state))
    assert set(by_action) == {"0", "0.0", "0.1", "0.2"}
    for states in by_action.values():
        assert states == ["queued", "running", "succeeded"]


# --- cache keys follow content ----------------------------------------------------------------------------------


def test_a_cached_file_input_is_keyed_by_its_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    CALLS.clear()
    Path("in.txt").write_text("one")
    assert fl.run(digest, fl.File("in.txt")).outputs == "one"
    assert fl.run(digest, fl.File("./in.txt")).outputs == "one"  # another name for the same content: a hit
    assert CALLS == ["in.txt"]
    Path("in.txt").write_text("two")
    assert fl.run(digest, fl.File("in.txt")).outputs == "two"  # changed in place: a miss
    assert CALLS == ["in.txt", "in.txt"]


def test_cache_keys_are_computed_from_literal_bytes_alone(tmp_path: Path) -> None:
    compiled = ExecTask.from_template(task_template(digest, digest.resolved()))
    file = tmp_path / "x.txt"
    file.write_text("content")
    params = digest.interface.inputs
    here = encode_values({"data": fl.File(str(file))}, params, where="t")
    there = encode_values({"data": fl.File(os.path.relpath(file))}, params, where="t")
    assert cache_key(compiled, here) == cache_key(compiled, there)
    file.write_text("other")
    assert cache_key(compiled, encode_values({"data": fl.File(str(file))}, params, where="t")) != cache_key(
        compiled, here
    )


def test_values_encode_only_when_bytes_are_needed() -> None:
    calls: list[int] = []

    def encode(values: object) -> bytes:
        calls.append(1)
        return b"x"

    values = Values({"a": 1}, encode=encode)
    assert not values.encoded
    assert calls == []
    assert values.data() == values.data() == b"x"
    assert calls == [1]


# --- one implementation of retry arithmetic -------------------------------------------------------------------


def test_the_sdk_and_the_executor_escalate_memory_to_the_same_byte() -> None:
    policy = fl.RetryPolicy(2, oom_memory_multiplier=1.1)
    sdk = policy.escalate(fl.Quantity.parse("12345Mi"))
    assert int(sdk.value) == escalate_memory(12345 * 2**20, 1.1) == int(Decimal(12345 * 2**20) * Decimal("1.1"))

    @env.task(retries=policy, resources=fl.Resources(memory="12345Mi"))
    async def grows() -> None: ...

    compiled = ExecTask.from_template(task_template(grows, grows.resolved()))
    assert compiled.escalated_memory(compiled.memory) == int(sdk.value)


def test_retry_delay_rejects_a_negative_retry_number() -> None:
    with pytest.raises(fl.SpecError, match="retry"):
        fl.RetryPolicy(2, backoff="1s").delay(-1)


# --- GPU probe: no process where the driver tells -------------------------------------------------------------


def test_gpus_are_read_from_the_driver_without_a_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = tmp_path / "gpus"
    for i, model in enumerate(["NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB"]):
        folder = gpus / f"0000:0{i}:00.0"
        folder.mkdir(parents=True)
        (folder / "information").write_text(f"Model: \t\t {model}\nIRQ:   42\n")
    monkeypatch.setattr(_capacity, "_NVIDIA_PROC", gpus)

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("no process may be started")

    monkeypatch.setattr(_capacity.subprocess, "run", no_process)
    assert _capacity.probe_gpus() == ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB")


def test_nvidia_smi_runs_once_per_boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_capacity, "_NVIDIA_PROC", tmp_path / "absent")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    counter = tmp_path / "count"
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho x >> {counter}\necho 'NVIDIA L4'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    home = tmp_path / "home"
    assert _capacity.probe_gpus(home) == ("NVIDIA L4",)
    assert _capacity.probe_gpus(home) == ("NVIDIA L4",)
    assert counter.read_text().count("x") == 1


async def test_the_runtime_refuses_to_start_outside_its_context() -> None:
    runtime = Runtime()
    with pytest.raises(RuntimeError, match="outside"):
        await runtime.start(fan, 1)
    with anyio.fail_after(5):
        async with runtime:
            assert await (await runtime.start(fan, 1)).result() == 0


async def test_events_can_be_recorded_durably_in_order() -> None:
    from flytelike._config import load_settings
    from flytelike._storage import RecordStore

    async with Runtime(record_events=True) as runtime:
        handle = await runtime.start(fan, 3)
        live = [e async for e in handle.events()]
    with RecordStore(load_settings().db_path) as store:
        stored = store.events(handle.id)
    assert [(e.seq, e.action, str(e.state)) for e in stored][-len(live) :] == [
        (e.seq, e.action, str(e.state)) for e in live
    ]
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))


iso = fl.TaskEnvironment(name="core_iso", platform=fl.Local(process=True), env_vars={"CORE_MODE": "isolated"})


@iso.task
def where_am_i() -> str:
    c = fl.ctx()
    return f"{c.task} {c.action_id} {c.attempt} {c.env['CORE_MODE']} {os.environ['CORE_MODE']}"


def test_ctx_inside_a_process_isolated_task() -> None:
    handle = fl.run(where_am_i)
    assert handle.outputs == "core_iso.where_am_i 0 1 isolated isolated"
