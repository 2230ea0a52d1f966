"""Progress of a running run on stderr: a live action tree on a terminal, plain lines otherwise.

Large fan-outs are folded: siblings running the same task show as one line with counts per state, so a
10,000-way ``asyncio.gather`` stays a few lines tall.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from typing import TextIO

import anyio

from flytelike._executor import ActionRecord, ActionState, Run

__all__ = ["live_view", "plain_view"]

_FOLD = 4
_PLAIN_LINES = 200


def _dur(r: ActionRecord) -> str:
    d = r.duration
    return "" if d is None else f"{d:.2f}s"


def _tree(run: Run, width: int) -> list[str]:
    children: dict[str | None, list[ActionRecord]] = defaultdict(list)
    for r in run.actions.values():
        children[r.parent].append(r)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        kids = children.get(parent, [])
        by_task: dict[str, list[ActionRecord]] = defaultdict(list)
        for k in kids:
            by_task[k.task].append(k)
        for task, group in by_task.items():
            pad = "  " * depth
            if len(group) > _FOLD:
                counts = Counter(r.state.value for r in group)
                summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                lines.append(f"{pad}{task} x{len(group)}: {summary}"[:width])
                continue
            for r in group:
                attempts = f" attempt {r.attempts}" if r.attempts > 1 else ""
                lines.append(f"{pad}{r.id:<8} {r.task:<30} {r.state.value:<10} {_dur(r):>8}{attempts}"[:width])
                walk(r.id, depth + 1)

    walk(None, 0)
    return lines


async def live_view(run: Run, stream: TextIO = sys.stderr) -> None:
    """Redraw the action tree in place a few times a second until cancelled."""
    drawn = 0
    try:
        while True:
            lines = _tree(run, 110)[:40]
            out = ("\x1b[1A\x1b[2K" * drawn) + "".join(line + "\n" for line in lines)
            stream.write(out)
            stream.flush()
            drawn = len(lines)
            await anyio.sleep(0.2)
    finally:
        lines = _tree(run, 110)[:40]
        stream.write(("\x1b[1A\x1b[2K" * drawn) + "".join(line + "\n" for line in lines))
        stream.flush()


async def plain_view(run: Run, stream: TextIO = sys.stderr) -> None:
    """One line per action state change (up to a limit, then a periodic summary), for logs and pipes."""
    seen: dict[str, ActionState] = {}
    printed = 0
    start = time.monotonic()
    last_summary = start

    def emit() -> None:
        nonlocal printed, last_summary
        for r in list(run.actions.values()):
            if seen.get(r.id) is r.state:
                continue
            seen[r.id] = r.state
            if printed < _PLAIN_LINES and r.state not in (ActionState.QUEUED,):
                stream.write(f"[{time.monotonic() - start:7.2f}s] {r.id} {r.task} {r.state.value} {_dur(r)}\n")
                printed += 1
        now = time.monotonic()
        if printed >= _PLAIN_LINES and now - last_summary > 5:
            counts = Counter(r.state.value for r in run.actions.values())
            stream.write(f"[{now - start:7.2f}s] " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + "\n")
            last_summary = now
        stream.flush()

    try:
        while True:
            emit()
            await anyio.sleep(0.2)
    finally:
        emit()
