"""A run taken over from its records goes on where each action stood: the attempt in doubt is handed to the backend
as resumed, retries already spent stay spent, recorded transitions are not emitted again, and a recorded failure is
not run again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import flytelike as fl
from flytelike._executor import (
    ActionRecord,
    ActionState,
    AdmitInput,
    AttemptInput,
    AttemptResult,
    Event,
    ExecTask,
    Executor,
    ExecutorInput,
    Resumed,
    RunRecord,
    Values,
)
from flytelike._invoke import TaskIndex
from flytelike.errors import BackendError, FlytelikeError

env = fl.TaskEnvironment(name="resume")


@env.task(retries=3)
async def work(x: int) -> int:
    return x


class _NoLease:
    def release(self) -> None:
        pass

    def suspend(self) -> None:
        pass

    async def resume(self) -> None:
        pass


@dataclass
class _Backend:
    """Answers each attempt with the inputs as outputs (or fails the attempts listed), noting what it was given."""

    reports_states: bool = True
    fail: set[int] = field(default_factory=set)
    seen: list[tuple[int, bool, bool]] = field(default_factory=list)
    name: str = "fake"

    def check(self, tasks: Sequence[ExecTask]) -> None:
        pass

    async def admit(self, request: AdmitInput) -> _NoLease:
        return _NoLease()

    async def run_attempt(self, attempt: AttemptInput) -> AttemptResult:
        self.seen.append((attempt.attempt, attempt.resumed, attempt.launched))
        if attempt.attempt in self.fail:
            raise BackendError(f"attempt {attempt.attempt} lost its machine")
        return AttemptResult(Values(data=attempt.inputs.data()))

    async def logs(self, action: ActionRecord, attempt: int) -> str:
        return ""

    async def __aenter__(self) -> _Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


class _Records:
    def write(self, run: RunRecord, actions: Sequence[ActionRecord], events: Sequence[Event] = ()) -> None:
        pass


class _NoCache:
    def get(self, key: str) -> None:
        return None

    def put(self, key: str, data: bytes) -> None:
        pass

    def try_lock(self, key: str) -> None:
        return None


async def _resume(backend: _Backend, resumed: Resumed, *, last_seq: int = 40) -> tuple[Any, list[Event]]:
    index = TaskIndex()
    task = index.exec_task(work)
    executor = Executor(ExecutorInput(backends=lambda _: backend, recorder=_Records(), cache=_NoCache()))
    run = executor.new_run(RunRecord("r-1", task.name, platform="fake"), resume={"0": resumed}, first_seq=last_seq)
    events: list[Event] = []
    run.subscribe(events.append)
    inputs = Values(data=index.compiled(work).encode_inputs({"x": 7}))
    try:
        outputs: Any = await executor.execute(run, task, inputs)
    except FlytelikeError as e:
        outputs = e
    return outputs, events


def _states(events: list[Event]) -> list[tuple[int, str]]:
    return [(e.attempt, e.state.value) for e in events if e.action == "0"]


async def test_a_running_attempt_is_handed_over_as_resumed_and_launched_and_its_end_is_new() -> None:
    backend = _Backend()
    outputs, events = await _resume(backend, Resumed(ActionState.RUNNING, 2, user_retries=1))
    assert backend.seen == [(2, True, True)]
    assert not isinstance(outputs, Exception)
    assert _states(events) == [(2, "succeeded")]
    assert events[0].seq == 41  # the run's events go on after the last recorded one


async def test_after_a_recorded_retry_the_next_attempt_is_in_doubt_but_not_known_launched() -> None:
    backend = _Backend()
    await _resume(backend, Resumed(ActionState.RETRYING, 1, system_retries=1))
    assert backend.seen == [(2, True, False)]


async def test_only_the_attempt_in_doubt_is_resumed_and_spent_retries_stay_spent() -> None:
    backend = _Backend(fail={2, 3, 4, 5})
    outputs, events = await _resume(backend, Resumed(ActionState.RUNNING, 2, system_retries=2))
    # Three SYSTEM retries in all (the default): two were spent before, so attempts 2 and 3 are the last.
    assert backend.seen == [(2, True, True), (3, False, False)]
    assert isinstance(outputs, FlytelikeError)
    assert [s for _, s in _states(events)] == ["retrying", "failed"]


async def test_a_recorded_success_is_read_again_without_emitting_it_twice() -> None:
    backend = _Backend()
    outputs, events = await _resume(backend, Resumed(ActionState.SUCCEEDED, 1))
    assert backend.seen == [(1, True, True)]
    assert not isinstance(outputs, Exception)
    assert _states(events) == []


async def test_a_recorded_final_failure_is_not_run_again() -> None:
    backend = _Backend()
    outputs, _ = await _resume(backend, Resumed(ActionState.FAILED, 4, error="it broke", kind="user"))
    assert backend.seen == []
    assert isinstance(outputs, FlytelikeError)
    assert "failed before the controller restarted: it broke" in str(outputs)


async def test_a_backend_that_does_not_report_states_is_never_told_an_attempt_was_launched() -> None:
    backend = _Backend(reports_states=False)
    _, events = await _resume(backend, Resumed(ActionState.RUNNING, 1))
    assert backend.seen == [(1, True, False)]
    assert _states(events) == [(1, "succeeded")]  # running was recorded already


async def test_actions_the_run_never_came_back_to_end_aborted() -> None:
    index = TaskIndex()
    task = index.exec_task(work)
    backend = _Backend()
    executor = Executor(ExecutorInput(backends=lambda _: backend, recorder=_Records(), cache=_NoCache()))
    resume = {"0": Resumed(ActionState.RUNNING, 1), "0.4": Resumed(ActionState.RUNNING, 1)}
    run = executor.new_run(RunRecord("r-2", task.name, platform="fake"), resume=resume)
    events: list[Event] = []
    run.subscribe(events.append)
    await executor.execute(run, task, Values(data=index.compiled(work).encode_inputs({"x": 1})))
    left = [e for e in events if e.action == "0.4"]
    assert [(e.state.value, e.reason) for e in left] == [
        ("aborted", "not taken up again after the controller restarted")
    ]
