"""Progress of a running run on stderr when it is not a terminal (a log file, a pipe, CI): plain lines.

The view follows the run's events (the same events a watch of a remote run streams). How much it says depends on
the verbosity ``flytelike run`` was given:

- ``normal`` (the default): one line when the run starts, one per action that failed or timed out (with the first
  line of its error), and a summary of the action states when it ends;
- ``verbose`` (``-v``): one line per state change of every action, as well;
- ``quiet`` (``-q``): only the failures.

On a terminal the live action tree of :mod:`flytelike._cli._live` is shown instead.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, TextIO

from flytelike._executor import ActionRecord, ActionState, Event

if TYPE_CHECKING:
    from flytelike._runtime import RunHandle

__all__ = ["VERBOSITIES", "Verbosity", "plain_view", "state_counts"]

Verbosity = Literal["quiet", "normal", "verbose"]
VERBOSITIES: tuple[Verbosity, ...] = ("quiet", "normal", "verbose")

_FAILED = frozenset({ActionState.FAILED, ActionState.TIMED_OUT})


def _dur(r: ActionRecord) -> str:
    d = r.duration
    return "" if d is None else f"{d:.2f}s"


def _first_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        return ""
    # A traceback's last line is the exception; anything else is best told by its first line.
    return lines[-1].strip() if lines[0].startswith("Traceback") else lines[0].strip()


def state_counts(records: Iterable[ActionRecord]) -> str:
    """``3 succeeded, 1 failed``: how many actions are in each state, most frequent first."""
    counts = Counter(r.state.value for r in records)
    return ", ".join(f"{n:,} {state}" for state, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


async def plain_view(run: RunHandle, stream: TextIO | None = None, verbosity: Verbosity = "normal") -> None:
    """Print the run's progress as plain lines to ``stream`` (default: stderr) until it ends or is cancelled."""
    stream = stream or sys.stderr
    start = time.monotonic()
    actions = run.actions()
    talk = verbosity != "quiet"

    def stamp() -> str:
        return f"[{time.monotonic() - start:7.2f}s]"

    def emit(event: Event) -> None:
        state = ActionState(event.state)
        if state is ActionState.QUEUED:
            return
        record = actions.get(event.action)
        task = record.task if record is not None else "?"
        if state in _FAILED:
            error = _first_line(record.error) if record is not None else ""
            stream.write(f"{stamp()} {event.action} {task} {state.value}: {error}\n")
        elif verbosity == "verbose":
            took = _dur(record) if record is not None and state.done else ""
            why = f" ({event.reason})" if event.reason else ""
            stream.write(f"{stamp()} {event.action} {task} {state.value}{why} {took}".rstrip() + "\n")
        else:
            return
        stream.flush()

    events = run.events()
    if talk:
        stream.write(f"run {run.id}: {run.task} started (flytelike runs show {run.id})\n")
        stream.flush()
    try:
        async for event in events:
            emit(event)
    finally:
        if talk:
            records = list(actions.values())
            elapsed = time.monotonic() - start
            stream.write(
                f"run {run.id} {run.state} in {elapsed:.2f}s: {len(records):,} actions ({state_counts(records)})\n"
            )
            stream.flush()
