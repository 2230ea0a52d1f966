"""The current run, as a context variable, so that tasks submit through it without importing the executor.

Outside a run the variable is unset and a task is a plain function. Inside a run the executor sets a
:class:`Submitter` for every action it runs; calling a task then asks it for a child action.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from flytelike.errors import FlytelikeError, SpecError

if TYPE_CHECKING:
    from flytelike._task import Task

__all__ = ["Submitter", "TaskContext", "ctx", "current", "current_group", "group", "use"]


@dataclass(frozen=True, slots=True)
class TaskContext:
    """Where the running task is: its run, action and attempt, and its environment variables.

    Attributes:
        run_id: the run (``flytelike runs show RUN``).
        action_id: the action inside the run (``0``, ``0.3``).
        attempt: 1 for the first attempt.
        task: the task's ``env.task`` name.
        platform: where it runs (``local``, ``kubernetes``, ``batch``).
        env: the process environment with the task's ``env_vars`` over it. Tasks that run in this process share
            its environment, so their ``env_vars`` are here rather than in ``os.environ``; a process-isolated or
            remote task has them in ``os.environ`` too.
        group: the ``fl.group`` the action was started in, or ``None``.
        kubernetes_pod, kubernetes_namespace: the pod running the attempt on Kubernetes; empty elsewhere.
        batch_job_id, batch_job_queue: the AWS Batch job running the attempt; empty elsewhere.
    """

    run_id: str
    action_id: str
    attempt: int
    task: str
    platform: str
    env: Mapping[str, str]
    group: str | None = None
    kubernetes_pod: str = ""
    kubernetes_namespace: str = ""
    batch_job_id: str = ""
    batch_job_queue: str = ""


class Submitter(Protocol):
    """What a running action offers the tasks it calls."""

    def submit(self, task: Task[..., Any], values: Mapping[str, Any]) -> Awaitable[Any]:
        """Create a child action now (its id follows the call order) and return an awaitable of its result."""
        ...

    def submit_blocking(self, task: Task[..., Any], values: Mapping[str, Any]) -> Any:
        """Run a child action from a worker thread (a sync task calling a task) and wait for its result."""
        ...

    def in_event_loop_thread(self) -> bool:
        """True when called on the run's event loop thread, where blocking is not allowed."""
        ...


_current: contextvars.ContextVar[Submitter | None] = contextvars.ContextVar("flytelike_submitter", default=None)

# The variable's own methods, for the per-action path (a Python-level wrapper would cost every call).
current_submitter = _current.get
set_submitter = _current.set
reset_submitter = _current.reset


def current() -> Submitter | None:
    """The submitter of the action running in this context, or ``None`` outside a run."""
    return _current.get()


def use(submitter: Submitter | None) -> contextvars.Token[Submitter | None]:
    """Make ``submitter`` current; reset with ``reset(token)``."""
    return _current.set(submitter)


def reset(token: contextvars.Token[Submitter | None]) -> None:
    _current.reset(token)


_group: contextvars.ContextVar[str | None] = contextvars.ContextVar("flytelike_group", default=None)
current_group = _group.get
_GROUP_NAME = re.compile(r"[^\s/][^/]{0,62}")


@contextlib.contextmanager
def group(name: str) -> Iterator[str]:
    """Label the actions started inside the ``with`` block as group ``name``.

    The progress view and ``flytelike runs show`` fold a group into one node (its size and states), listing only
    the members that did not succeed; ``runs show --all`` lists every member. Groups nest by name (the innermost
    wins) and follow asyncio tasks started inside the block (``asyncio.gather``). Outside a run it does nothing.

    Raises:
        SpecError: ``name`` is empty, longer than 63 characters, or contains ``/``.

    Example:
        >>> import asyncio, flytelike as fl
        >>> env = fl.TaskEnvironment(name="doc-group")
        >>> @env.task
        ... async def score(x: int) -> int:
        ...     return x
        >>> @env.task
        ... async def sweep() -> int:
        ...     with fl.group("grid"):
        ...         return sum(await asyncio.gather(*(score(i) for i in range(3))))
        >>> fl.run(sweep).outputs
        3
    """
    if not isinstance(name, str) or not _GROUP_NAME.fullmatch(name.strip()):
        raise SpecError("group.name", name, "not a group name", accepted="'training', 'grid search' (no '/')")
    token = _group.set(name.strip())
    try:
        yield name.strip()
    finally:
        _group.reset(token)


def ctx() -> TaskContext:
    """The context of the task running now: run and action ids, attempt, task name, platform, environment.

    Raises:
        FlytelikeError: called outside a running task (a task called as a plain function has no run).

    Example:
        >>> import flytelike as fl
        >>> env = fl.TaskEnvironment(name="doc-ctx", env_vars={"MODE": "fast"})
        >>> @env.task
        ... async def where() -> str:
        ...     c = fl.ctx()
        ...     return f"{c.task} {c.action_id} {c.env['MODE']}"
        >>> fl.run(where).outputs
        'doc-ctx.where 0 fast'
    """
    submitter = _current.get()
    # A submitter that cannot tell (one serving a process that has no run context) has no `context` method.
    context = getattr(submitter, "context", None)
    if context is None:
        raise FlytelikeError(
            "fl.ctx() is only available inside a running task (fl.run, flytelike run); this code is not running "
            "as a task of a run"
        )
    result: TaskContext = context()
    return result
