"""Failures of attempts: their kind (which retry budget applies), how they are recorded, and the final error.

A task's own exception, a description of one raised elsewhere (``TaskCodeError``), an out-of-memory kill, a
timeout and a platform fault all end an attempt; this module says which kind each is and words the error the
run raises once the retries are spent.
"""

from __future__ import annotations

import math
import sys
import traceback

from flytelike._executor._events import FailureKind
from flytelike._executor._exec_task import ExecTask
from flytelike._executor._model import ActionRecord
from flytelike.errors import (
    BackendError,
    OutOfMemoryError,
    TaskCodeError,
    TaskFailedError,
    TaskTimeoutError,
)

__all__ = ["describe", "final_error", "first_line", "kind_of", "seconds", "type_name"]

_RECURSION_FRAMES = 12


def kind_of(e: BaseException, action: str) -> FailureKind:
    if isinstance(e, TaskFailedError) and e.action != action:
        # A child's failure that the task's code let through is the task's own (user) failure.
        return FailureKind.USER
    declared = getattr(e, "failure_kind", None)
    if declared is not None:
        return FailureKind(declared)
    if isinstance(e, OutOfMemoryError | MemoryError):
        return FailureKind.OOM
    if isinstance(e, BackendError):
        return FailureKind.SYSTEM
    return FailureKind.USER


def type_name(e: BaseException) -> str:
    if isinstance(e, TaskCodeError):
        return e.type_name.rpartition(".")[2]
    return type(e).__name__


def seconds(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 120 or not math.isfinite(seconds) else f"{seconds / 60:g}m"


def describe(e: BaseException, record: ActionRecord) -> str:
    if isinstance(e, TaskFailedError) and e.action != record.id:
        # A child's failure let through: its record has the traceback; repeating it at every level up would grow
        # the records with the square of the nesting depth.
        return f"child action {e.origin_action} ({e.origin_task}) failed: {e.cause or e}"
    if isinstance(e, TaskCodeError) and e.traceback_text:
        return e.traceback_text.rstrip()
    if isinstance(e, RecursionError):
        # Its traceback is a thousand identical frames; the last ones say where.
        text = traceback.format_exception(type(e), e, e.__traceback__, limit=-_RECURSION_FRAMES)
        return "".join(text).rstrip() + f"\n{_recursion(record)}"
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()


def _recursion(record: ActionRecord) -> str:
    depth = record.id.count(".") + 1
    return (
        f"tasks nested {depth} deep exceeded Python's recursion limit ({sys.getrecursionlimit()}): nest fewer "
        "levels (loop inside one task, or fan out with asyncio.gather / fl.map)"
    )


def first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def final_error(
    kind: FailureKind, failure: BaseException, task: ExecTask, record: ActionRecord, total: int
) -> Exception:
    where = f"task {task.name} (action {record.id}, attempt {record.attempts}/{total})"
    error: TaskFailedError
    if isinstance(failure, TaskFailedError) and failure.action != record.id:
        # A descendant's failure this task let through: one error naming where it was raised, whose cause is what
        # was raised there (the user's exception), however deep the nesting.
        propagated = failure.origin_action != failure.action or type(failure) is TaskFailedError
        root = failure.__cause__ if propagated and failure.__cause__ is not None else failure
        # A timeout or an out-of-memory kill is described by its own error; anything else by the user's exception.
        text = (
            str(root)
            if isinstance(root, TaskFailedError)
            else (f"{failure.cause} (raised in task {failure.origin_task}, action {failure.origin_action})")
        )
        error = TaskFailedError(
            f"{where} failed: {text}",
            task=task.name,
            action=record.id,
            attempt=record.attempts,
            cause_type=failure.cause_type,
            cause=failure.cause,
            origin_task=failure.origin_task,
            origin_action=failure.origin_action,
        )
        error.failure_kind = kind.value  # type: ignore[attr-defined]
        error.__cause__ = root
        return error
    if kind is FailureKind.TIMEOUT:
        error = TaskTimeoutError(
            f"{where} timed out: {failure}",
            task=task.name,
            action=record.id,
            attempt=record.attempts,
            cause=f"timed out: {failure}",
        )
    elif kind is FailureKind.OOM:
        error = OutOfMemoryError(
            f"{where} ran out of memory: {failure}",
            task=task.name,
            action=record.id,
            attempt=record.attempts,
            cause_type="OutOfMemoryError",
            cause=f"ran out of memory: {failure}",
        )
    else:
        if isinstance(failure, TaskCodeError):
            # Named as for an exception raised here: builtins get their module too.
            name = failure.type_name
            cause_type, cause = (name if "." in name else f"builtins.{name}"), str(failure)
        else:
            cls = type(failure)
            cause_type, cause = f"{cls.__module__}.{cls.__qualname__}", f"{cls.__name__}: {failure}"
            if isinstance(failure, RecursionError):
                cause = f"RecursionError: {_recursion(record)}"
        error = TaskFailedError(
            f"{where} failed: {cause}",
            task=task.name,
            action=record.id,
            attempt=record.attempts,
            cause_type=cause_type,
            cause=cause,
        )
    error.failure_kind = kind.value  # type: ignore[attr-defined]
    error.__cause__ = failure
    return error
