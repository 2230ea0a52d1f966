"""The current run, as a context variable, so that tasks submit through it without importing the executor.

Outside a run the variable is unset and a task is a plain function. Inside a run the executor sets a
:class:`Submitter` for every action it runs; calling a task then asks it for a child action.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flytelike._task import Task

__all__ = ["Submitter", "current", "use"]


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


def current() -> Submitter | None:
    """The submitter of the action running in this context, or ``None`` outside a run."""
    return _current.get()


def use(submitter: Submitter | None) -> contextvars.Token[Submitter | None]:
    """Make ``submitter`` current; reset with ``reset(token)``."""
    return _current.set(submitter)


def reset(token: contextvars.Token[Submitter | None]) -> None:
    _current.reset(token)
