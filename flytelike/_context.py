"""The current run, as a context variable, so that tasks submit through it without importing the executor.

Outside a run the variable is unset and a task is a plain function. Inside a run the executor sets a
:class:`Submitter` for every action it runs; calling a task then asks it for a child action.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from flytelike.errors import FlytelikeError

if TYPE_CHECKING:
    from flytelike._task import Task

__all__ = ["Submitter", "TaskContext", "ctx", "current", "use"]


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
    """

    run_id: str
    action_id: str
    attempt: int
    task: str
    platform: str
    env: Mapping[str, str]


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
