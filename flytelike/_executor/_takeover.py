"""Where a resumed action goes on: its run was taken over from its records by a controller after a restart."""

from __future__ import annotations

from typing import NamedTuple

from flytelike._executor._events import FailureKind
from flytelike._executor._exec_task import ExecTask
from flytelike._executor._model import ActionRecord, ActionState, Resumed
from flytelike.errors import BackendError

__all__ = ["Start", "go_on", "in_doubt"]


class Start(NamedTuple):
    """How the attempt loop of a resumed action starts.

    Attributes:
        done: attempts over before the one in doubt (the loop's next turn is the attempt in doubt).
        memory, reserved: this attempt's memory limit and what admission books, after the recorded escalations.
        user_left, system_left: retries left of the task's own budget and of the SYSTEM/INFRA budget.
    """

    done: int
    memory: int
    reserved: int
    user_left: int
    system_left: int


def go_on(
    task: ExecTask, record: ActionRecord, resumed: Resumed, *, memory: int, reserved: int, system_retries: int
) -> Start:
    """Take a resumed action up where its records left it; a recorded final failure is raised again (nothing runs).

    The attempt in doubt is the recorded one, or the one after it when the record is its predecessor's retry (or an
    abort, whose pod or job was removed).
    """
    record.state = resumed.state
    record.attempts = resumed.attempt
    if resumed.state in (ActionState.FAILED, ActionState.TIMED_OUT):
        record.error, record.failure_kind = resumed.error or None, resumed.kind or None
        error = BackendError(
            f"task {task.name} (action {record.id}) failed before the controller restarted: {resumed.error}"
        )
        error.failure_kind = resumed.kind or FailureKind.SYSTEM.value  # type: ignore[attr-defined]
        error.retryable = False  # type: ignore[attr-defined]
        raise error
    for _ in range(resumed.oom_retries):
        memory = task.escalated_memory(memory)
        reserved = min(task.escalated_memory(reserved), memory)
    record.memory = reserved
    past = resumed.state in (ActionState.RETRYING, ActionState.ABORTED)
    done = resumed.attempt if past else resumed.attempt - 1
    return Start(
        max(done, 0), memory, reserved, task.retries - resumed.user_retries, system_retries - resumed.system_retries
    )


def in_doubt(resumed: Resumed | None, attempt: int) -> bool:
    """Whether ``attempt`` of a resumed action may have been started by the controller before (its intent was
    recorded)."""
    return resumed is not None and attempt == max(resumed.attempt, 1) + (resumed.state is ActionState.RETRYING)
