"""What runs the runs of a control plane: a :class:`RunSource`, told what to start and abort, reporting back.

The server records and serves; a run source executes. :class:`~flytelike._remote._runtime_source.RuntimeRunSource`
runs them on a :class:`~flytelike._runtime.Runtime` (as a local run does); a source reports every action event,
every piece of output and the run's end through the :class:`RunReports` it was given, from the event loop.
"""

from __future__ import annotations

from typing import Protocol

from flytelike._proto.remote.v1 import runs_pb2

__all__ = ["RunReports", "RunSource"]


class RunReports(Protocol):
    """Where a run source reports (none of these block: they queue the report for the server to record)."""

    def running(self, run_id: str) -> None:
        """The run started executing."""

    def event(self, event: runs_pb2.Event) -> None:
        """An action's transition (its seq counts up per run)."""

    def logs(self, run_id: str, action_id: str, attempt: int, offset: int, data: bytes) -> None:
        """Output of an attempt, starting ``offset`` bytes into it."""

    def finished(self, run_id: str, state: str, *, error: str = "", outputs: bytes | None = None) -> None:
        """The run ended: ``state`` is succeeded (with the output LiteralMap), failed or aborted."""

    async def durable(self) -> None:
        """Wait until everything reported before this call is recorded for good."""


class RunSource(Protocol):
    """Executes the server's runs."""

    async def start(self, run_id: str, request: runs_pb2.CreateRunRequest, reports: RunReports) -> None:
        """Start executing the run and return; what happens next is reported. Raises if it cannot start."""

    async def abort(self, run_id: str, action_id: str, reason: str) -> str:
        """Stop the run (``action_id`` empty) or one action; returns what was done, in a few words."""
