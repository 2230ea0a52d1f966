"""What every backend is built from, so the runtime builds any of them the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio.abc

from flytelike._config import Settings
from flytelike._executor import AttemptInput, AttemptResult, ExecTask

if TYPE_CHECKING:
    from flytelike._backends._remote import RemoteServices

__all__ = ["BackendInput", "InProcess"]


class InProcess(Protocol):
    """Runs a task's Python code in this process, and maps values and tasks to and from their wire form.

    The SDK side of the runtime provides it; backends never see SDK objects.
    """

    def invoke(self, attempt: AttemptInput) -> Awaitable[AttemptResult]: ...

    def code_file(self, task: ExecTask) -> str | None:
        """The file defining the task's module, for a worker process to import it from."""
        ...

    def exec_task_called(self, template: bytes, caller: ExecTask) -> ExecTask:
        """The task a worker process called, from the template the worker sent, compiled for this run."""
        ...

    def from_template(self, task: ExecTask) -> bool:
        """Whether the task is known only by its template (a run started from one: its code is not here)."""
        ...

    def may_call(self, task: ExecTask) -> bool:
        """Whether the task may call other tasks (True when its code cannot be read here)."""
        ...


@dataclass(frozen=True, slots=True)
class BackendInput:
    """Attributes:
    settings: the resolved settings (each backend reads its own section).
    in_process: runs Python code in this process.
    options: per-run choices that override settings (``policy`` and ``capacity`` for the local backend).
    remote: the store, bundles and controller shared by the backends whose tasks run in other processes.
    background: where a backend starts what runs beside the runs (a shared watch); it cancels its own tasks
        there when it is left.
    """

    settings: Settings
    in_process: InProcess
    options: Mapping[str, Any] = field(default_factory=dict)
    remote: RemoteServices | None = None
    background: anyio.abc.TaskGroup | None = None
