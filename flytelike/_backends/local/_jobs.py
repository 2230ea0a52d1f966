"""What the worker pool takes and gives: a job (one attempt of a task, as its template and literal inputs), its
result (literal outputs and what it used), and the error of a task that raised in its worker."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from flytelike._proto.core.v1 import tasks_pb2
from flytelike._proto.worker.v1 import worker_pb2

__all__ = ["ProcessJob", "ProcessResult", "TaskProcessError"]


@dataclass(frozen=True, slots=True)
class ProcessJob:
    """One attempt of a task to run in a worker.

    Attributes:
        run_id, action_id, attempt: which attempt this is.
        template: the task's serialized TaskTemplate.
        inputs: its serialized LiteralMap of inputs.
        code_file: the file defining the task's module; None: the worker imports the template's module.
        memory_limit: bytes of resident memory for the worker and its descendants; 0 = no limit.
        cpus: cpu ids to pin the task to; empty = no pinning.
        cuda_visible_devices: the task's CUDA_VISIBLE_DEVICES; None leaves it as the worker has it.
        env: environment variables for this job only.
    """

    run_id: str
    action_id: str
    attempt: int
    template: bytes
    inputs: bytes
    code_file: str | None
    memory_limit: int = 0
    cpus: tuple[int, ...] = ()
    cuda_visible_devices: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.memory_limit < 0:
            raise ValueError(f"ProcessJob for action {self.action_id}: memory_limit={self.memory_limit} is negative")

    @property
    def task(self) -> str:
        """The task's name, read from the template (for messages)."""
        try:
            return tasks_pb2.TaskTemplate.FromString(self.template).id.name or "?"
        except Exception:
            return "?"

    def start(self, *, calls: bool) -> worker_pb2.Start:
        start = worker_pb2.Start(
            run_id=self.run_id,
            action_id=self.action_id,
            attempt=self.attempt,
            template=self.template,
            inputs=self.inputs,
            code_file=self.code_file or "",
            memory_limit=self.memory_limit,
            calls=calls,
        )
        # Filling a repeated or map field costs even when empty; most jobs have neither.
        if self.cpus:
            start.cpus.extend(self.cpus)
        if self.env:
            start.env.update(self.env)
        if self.cuda_visible_devices is not None:
            start.cuda_visible_devices = self.cuda_visible_devices
        return start


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What a job produced: its serialized LiteralMap of outputs, peak resident memory (bytes), cpu seconds and
    its output."""

    outputs: bytes
    peak_memory: int
    cpu_time: float
    logs: str


class TaskProcessError(Exception):
    """The task raised in the worker.

    Attributes:
        type_name: qualified name of the exception's class (``ValueError``, ``mymod.MyError``).
        message: ``str()`` of the exception.
        traceback_text: the formatted traceback, as the worker printed it.
        logs: what the job wrote to stdout/stderr before it failed.
    """

    def __init__(self, message: str, *, type_name: str, traceback_text: str, logs: str = "") -> None:
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        self.logs = logs
        super().__init__(f"{type_name}: {message}" if message else type_name)

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments are lost by the default pickling of exceptions.
        return (_rebuild, (self.message, self.type_name, self.traceback_text, self.logs))

    @classmethod
    def named(cls, message: str, *, type_name: str, traceback_text: str, logs: str = "") -> TaskProcessError:
        """The error as an instance of a subclass named like the exception the task raised.

        Nothing is unpickled, so the task's own class is never imported here; but whoever reports the failure by
        its class (``type(e).__name__``, ``module.qualname``) still names what the task raised: ``ValueError``,
        ``mymod.MyError``.
        """
        return _named_class(type_name)(message, type_name=type_name, traceback_text=traceback_text, logs=logs)


def _rebuild(message: str, type_name: str, traceback_text: str, logs: str) -> TaskProcessError:
    return TaskProcessError(message, type_name=type_name, traceback_text=traceback_text, logs=logs)


@functools.lru_cache(maxsize=256)
def _named_class(type_name: str) -> type[TaskProcessError]:
    module, _, qualname = type_name.rpartition(".")
    if not qualname.isidentifier():
        return TaskProcessError
    attributes = {"__module__": module or "builtins", "__qualname__": qualname, "__doc__": TaskProcessError.__doc__}
    return type(qualname, (TaskProcessError,), attributes)
