"""Aborting one action's running attempt (``Run.abort_action``), for runs that allow it (a server's)."""

from __future__ import annotations

import anyio

from flytelike._executor._events import FailureKind
from flytelike._executor._failures import seconds
from flytelike._executor._protocols import AttemptInput, AttemptResult, Backend

__all__ = ["AbortedError", "Aborts"]


class AbortedError(Exception):
    """An attempt stopped by :meth:`Aborts.abort`."""


class Aborts:
    """The running attempts of a run, each under a cancel scope of its own, by action id."""

    def __init__(self) -> None:
        self._scopes: dict[str, tuple[anyio.CancelScope, list[str]]] = {}

    def abort(self, action_id: str, reason: str) -> bool:
        """Cancel the action's running attempt; False when it has none."""
        found = self._scopes.get(action_id)
        if found is None:
            return False
        found[1].append(reason)
        found[0].cancel()
        return True

    async def run(self, backend: Backend, one: AttemptInput) -> AttemptResult | TimeoutError:
        """Run one attempt that :meth:`abort` can stop; its result, or the failure of its timeout.

        Raises:
            AbortedError: it was aborted (with the reason given).
        """
        task, action = one.task, one.action.id
        scope, reasons = self._scopes[action] = (anyio.CancelScope(), [])
        try:
            with scope:
                if task.timeout is None:
                    return await backend.run_attempt(one)
                with anyio.move_on_after(task.timeout):
                    return await backend.run_attempt(one._replace(deadline=anyio.current_time() + task.timeout))
                failure = TimeoutError(f"exceeded {seconds(task.timeout)}")
                failure.failure_kind = FailureKind.TIMEOUT.value  # type: ignore[attr-defined]
                return failure
        finally:
            self._scopes.pop(action, None)
        why = f": {reasons[0]}" if reasons and reasons[0] else ""
        raise AbortedError(f"task {task.name} (action {action}, attempt {one.attempt}) was aborted{why}")
