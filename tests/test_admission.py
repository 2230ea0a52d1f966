"""Admission of local actions against this machine's capacity.

Unit tests of the FIFO gate, then whole runs on a pretend machine (2 cores, 1 GiB, no GPU): a request that can
never fit fails before anything starts; cpu and GPUs beyond the machine warn (or fail when strict); requests that
fit queue in call order; a parent awaiting its children never deadlocks.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import anyio
import pytest

import flytelike as fl
from flytelike._backends.local._admission import Admission, Request
from flytelike._backends.local._capacity import Capacity
from flytelike._cli._run import admission_hint
from flytelike._config import load_settings
from flytelike._storage import RecordStore
from flytelike.errors import AdmissionError, CapacityWarning

GiB = 1024**3
MiB = 1024**2

# --- the gate --------------------------------------------------------------------------------------------------


def machine(cpu: int = 2000, memory: int = GiB, gpus: int = 0) -> Admission:
    return Admission(cpu, memory, gpus)


async def _wait_admitted(gate: Admission, request: Request, order: list[str], name: str) -> None:
    await gate.acquire(request)
    order.append(name)


async def test_requests_that_fit_are_admitted_at_once() -> None:
    gate = machine()
    with anyio.fail_after(1):
        await gate.acquire(Request(1000, 512 * MiB))
        await gate.acquire(Request(1000, 512 * MiB))
    assert gate.waiting == 0
    assert not gate.can_admit_now(Request(1))
    assert gate.can_admit_now(Request())
    # An empty request never waits, even on a full machine.
    with anyio.fail_after(1):
        await gate.acquire(Request())


async def test_a_waiting_big_request_is_not_overtaken_by_later_small_ones() -> None:
    gate = machine()
    order: list[str] = []
    await gate.acquire(Request(1500))
    async with anyio.create_task_group() as tg:
        tg.start_soon(_wait_admitted, gate, Request(1000), order, "big")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(_wait_admitted, gate, Request(500), order, "small")
        await anyio.wait_all_tasks_blocked()
        # 500 millicores are free, but "big" came first: "small" waits behind it.
        assert order == []
        assert gate.waiting == 2
        assert not gate.can_admit_now(Request(500))
        gate.release(Request(1500))
    assert order == ["big", "small"]
    assert gate.waiting == 0


async def test_release_wakes_waiters_in_order_as_far_as_they_fit() -> None:
    gate = machine(cpu=3000)
    order: list[str] = []
    await gate.acquire(Request(3000))
    async with anyio.create_task_group() as tg:
        for name in ("a", "b", "c"):
            tg.start_soon(_wait_admitted, gate, Request(1000), order, name)
            await anyio.wait_all_tasks_blocked()
        gate.release(Request(2000))
        await anyio.wait_all_tasks_blocked()
        assert order == ["a", "b"]
        assert gate.waiting == 1
        gate.release(Request(1000))
    assert order == ["a", "b", "c"]


async def test_a_cancelled_waiter_leaves_the_queue_and_wakes_the_next() -> None:
    gate = machine()
    order: list[str] = []
    await gate.acquire(Request(1500))
    async with anyio.create_task_group() as tg:
        big_scope = anyio.CancelScope()

        async def big() -> None:
            with big_scope:
                await _wait_admitted(gate, Request(1000), order, "big")

        tg.start_soon(big)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(_wait_admitted, gate, Request(500), order, "small")
        await anyio.wait_all_tasks_blocked()
        assert order == []
        big_scope.cancel()
    assert order == ["small"]  # fits in the 500 left, now that nothing waits ahead of it
    assert gate.waiting == 0
    gate.release(Request(1500))
    gate.release(Request(500))
    assert gate.can_admit_now(Request(2000, GiB))


async def test_a_waiter_admitted_while_being_cancelled_gives_its_share_back() -> None:
    gate = machine()
    order: list[str] = []
    await gate.acquire(Request(2000))
    scope = anyio.CancelScope()

    async def waiter() -> None:
        with scope:
            await _wait_admitted(gate, Request(2000), order, "w")

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        gate.release(Request(2000))  # admits the waiter (takes its share) ...
        scope.cancel()  # ... which is cancelled before it resumes
        assert not gate.can_admit_now(Request(1))
    # Either acquire() returned (the caller owns the share and releases it) or it raised and gave the share back.
    if order == ["w"]:
        gate.release(Request(2000))
    assert gate.can_admit_now(Request(2000, GiB))  # nothing leaked
    assert gate.waiting == 0


def test_request_and_capacity_clamp() -> None:
    assert not Request()
    assert Request(gpus=1)
    cap = Capacity(2000, GiB, 0)
    assert cap.clamp(Request(8000, 4 * GiB, 2)) == Request(2000, GiB, 0)
    assert cap.clamp(Request(500, MiB, 0)) == Request(500, MiB, 0)


_of_this_machine = Capacity.of_this_machine  # before the autouse fixture below replaces it


def test_capacity_of_this_machine() -> None:
    cap = _of_this_machine(("NVIDIA A100", "NVIDIA A100"))
    assert cap.cpu_millis >= 1000
    assert cap.cpu_millis % 1000 == 0
    assert cap.memory > 0
    assert (cap.gpus, cap.gpu_names) == (2, ("NVIDIA A100", "NVIDIA A100"))
    assert _of_this_machine().gpus == 0


# --- whole runs on a small machine --------------------------------------------------------------------------------

SMALL = Capacity(2000, GiB, 0)


@pytest.fixture(autouse=True)
def small_machine(monkeypatch: pytest.MonkeyPatch) -> Capacity:
    monkeypatch.setattr(Capacity, "of_this_machine", classmethod(lambda cls, gpu_names=(): SMALL))
    return SMALL


env = fl.TaskEnvironment(name="admission")
RAN: list[str] = []
LIVE: dict[str, int] = {"now": 0, "max": 0}


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()
    LIVE.update(now=0, max=0)


@env.task(resources=fl.Resources(memory="4Gi"))
async def needs_4gi() -> str:
    RAN.append("needs_4gi")
    return "big"


@env.task
async def calls_big() -> str:
    RAN.append("calls_big")
    return await needs_4gi()


@env.task
async def calls_big_indirectly(name: str = "needs_4gi") -> str:
    RAN.append("calls_big_indirectly")
    return await globals()[name]()  # type: ignore[no-any-return]


@env.task(resources=fl.Resources(cpu=8))
async def wants_8_cores(i: int) -> int:
    RAN.append(f"cpu8 {i}")
    return i


@env.task
async def three_wide() -> int:
    return sum(await asyncio.gather(*(wants_8_cores(i) for i in range(3))))


@env.task(resources=fl.Resources(gpu=1))
async def wants_a_gpu() -> str:
    RAN.append("gpu")
    return "ran without a GPU"


async def _tracked(i: int) -> int:
    RAN.append(f"start {i}")
    LIVE["now"] += 1
    LIVE["max"] = max(LIVE["max"], LIVE["now"])
    await asyncio.sleep(0.05)
    LIVE["now"] -= 1
    return i


@env.task(resources=fl.Resources(cpu=1))
async def one_core(i: int) -> int:
    return await _tracked(i)


@env.task(resources=fl.Resources(memory="600Mi"))
async def most_of_the_memory(i: int) -> int:
    return await _tracked(i)


@env.task
async def four_one_core() -> list[int]:
    return list(await asyncio.gather(*(one_core(i) for i in range(4))))


@env.task
async def four_big_memory() -> list[int]:
    return list(await asyncio.gather(*(most_of_the_memory(i) for i in range(4))))


@env.task(resources=fl.Resources(cpu=2))
async def two_cores_leaf(i: int) -> int:
    await asyncio.sleep(0.01)
    return i


@env.task(resources=fl.Resources(cpu=2))
async def two_cores_parent(n: int) -> int:
    first = sum(await asyncio.gather(*(two_cores_leaf(i) for i in range(n))))
    return first + await two_cores_leaf(100)


@env.task(resources=fl.Resources(cpu=2))
def two_cores_sync_parent(n: int) -> int:
    return sum(two_cores_leaf(i) for i in range(n))  # type: ignore[misc]


def runs_recorded() -> list[Any]:
    with RecordStore(load_settings().db_path) as store:
        return store.runs()


def test_memory_that_can_never_fit_fails_before_anything_starts() -> None:
    with pytest.raises(AdmissionError) as caught:
        fl.run(calls_big)
    message = str(caught.value)
    assert "admission.needs_4gi" in message
    assert "4.0 GiB" in message  # the request
    assert "1.0 GiB" in message  # the capacity
    error = caught.value
    assert (error.task, error.resource, error.requested, error.capacity) == (
        "admission.needs_4gi",
        "memory",
        4 * GiB,
        GiB,
    )
    assert not error.strict
    # What to do about it is the CLI's to say, with its flags: run it elsewhere, or here anyway.
    hint = admission_hint(error)
    assert "--with kubernetes" in hint
    assert "--with batch" in hint
    assert "--local-resources ignore" in hint  # how to run it anyway: a flag ...
    assert '[local] resources = "ignore"' in hint  # ... and a setting
    assert RAN == []  # not even the parent started
    assert runs_recorded() == []


def test_memory_that_can_never_fit_found_only_at_run_time_fails_without_running_it() -> None:
    with pytest.raises(AdmissionError) as caught:
        fl.run(calls_big_indirectly)
    assert "admission.needs_4gi" in str(caught.value)
    assert "action 0.0" in str(caught.value)
    assert RAN == ["calls_big_indirectly"]
    [run] = runs_recorded()
    assert run.state.value == "failed"


@pytest.mark.parametrize(
    "runner",
    [
        pytest.param(lambda: fl.Runner(local_resources="ignore"), id="argument"),
        pytest.param(lambda: fl.Runner(settings=load_settings(local={"resources": "ignore"})), id="setting"),
    ],
)
def test_ignore_runs_it_anyway(runner: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and without a warning
        assert runner().run(calls_big).outputs == "big"
    assert RAN == ["calls_big", "needs_4gi"]


def test_cpu_beyond_the_cores_warns_once_and_runs() -> None:
    with pytest.warns(CapacityWarning) as caught:
        handle = fl.run(three_wide)
    assert handle.outputs == 0 + 1 + 2
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "admission.wants_8_cores" in message
    assert "8 cpu" in message
    assert "2 cores" in message
    assert sorted(RAN) == ["cpu8 0", "cpu8 1", "cpu8 2"]


@pytest.mark.parametrize("task", [three_wide, wants_a_gpu], ids=["cpu", "gpu"])
def test_strict_turns_the_warning_into_an_error(task: Any) -> None:
    runner = fl.Runner(settings=load_settings(local={"resources": "strict"}))
    with pytest.raises(AdmissionError) as caught:
        runner.run(task)
    assert "strict" in str(caught.value)
    assert caught.value.strict
    assert caught.value.resource == ("cpu" if task is three_wide else "gpu")
    assert "--with kubernetes" in admission_hint(caught.value)
    assert RAN == []
    assert runs_recorded() == []


def test_a_gpu_this_machine_lacks_warns_and_runs_without_it() -> None:
    with pytest.warns(CapacityWarning, match=r"admission\.wants_a_gpu requests 1 GPU\(s\) but this machine has 0"):
        assert fl.run(wants_a_gpu).outputs == "ran without a GPU"


@pytest.mark.parametrize("parent", [four_one_core, four_big_memory], ids=["cpu=1 of 2 cores", "600Mi of 1Gi"])
def test_requests_that_fit_wait_their_turn_in_call_order(parent: Any) -> None:
    handle = fl.run(parent)
    assert handle.outputs == [0, 1, 2, 3]
    assert RAN == ["start 0", "start 1", "start 2", "start 3"]
    expected = 2 if parent is four_one_core else 1
    assert LIVE["max"] == expected


async def test_a_parent_awaiting_children_holds_no_capacity() -> None:
    # The parent and each child want the whole machine: holding the parent's share while it waits would hang.
    with anyio.fail_after(10):
        handle = await fl.run_async(two_cores_parent, 3)
        assert handle.outputs == 0 + 1 + 2 + 100
        handle = await fl.run_async(two_cores_sync_parent, 3)
        assert handle.outputs == 0 + 1 + 2
