"""Progress of a running run on stderr: a live action tree on a terminal, plain lines otherwise.

Both follow the run's events (the same events a watch of a remote run streams): the plain view prints one line per
transition, the live view redraws the tree when something changed. Large fan-outs are folded: siblings running the
same task show as one line with counts per state, so a 10,000-way ``asyncio.gather`` stays a few lines tall.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, TextIO

import anyio

from flytelike._executor import ActionRecord, ActionState, Event

if TYPE_CHECKING:
    from flytelike._runtime import RunHandle

__all__ = ["live_view", "plain_view"]

_FOLD = 4
_PLAIN_LINES = 200


def _dur(r: ActionRecord) -> str:
    d = r.duration
    return "" if d is None else f"{d:.2f}s"


def _tree(run: RunHandle, width: int) -> list[str]:
    children: dict[str | None, list[ActionRecord]] = defaultdict(list)
    for r in list(run.actions().values()):
        children[r.parent].append(r)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        kids = children.get(parent, [])
        by_task: dict[str, list[ActionRecord]] = defaultdict(list)
        labelled: dict[str, list[ActionRecord]] = defaultdict(list)
        for k in kids:
            (by_task[k.task] if k.group_name is None else labelled[k.group_name]).append(k)
        for name, members in labelled.items():  # an fl.group: always one folded node
            counts = Counter(r.state.value for r in members)
            summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            lines.append(f"{'  ' * depth}group {name} x{len(members)}: {summary}"[:width])
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


async def live_view(run: RunHandle, stream: TextIO = sys.stderr) -> None:
    """Redraw the action tree in place, at most five times a second and only after a change, until cancelled."""
    drawn = 0
    changed = anyio.Event()

    async def watch() -> None:
        nonlocal changed
        async for _ in run.events():
            changed.set()

    def draw() -> None:
        nonlocal drawn
        lines = _tree(run, 110)[:40]
        stream.write(("\x1b[1A\x1b[2K" * drawn) + "".join(line + "\n" for line in lines))
        stream.flush()
        drawn = len(lines)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            while True:
                await changed.wait()
                changed = anyio.Event()
                draw()
                await anyio.sleep(0.2)
    finally:
        draw()


async def plain_view(run: RunHandle, stream: TextIO = sys.stderr) -> None:
    """One line per action state change (up to a limit, then a periodic summary), for logs and pipes."""
    printed = 0
    start = time.monotonic()
    last_summary = start
    actions = run.actions()

    def emit(event: Event) -> None:
        nonlocal printed, last_summary
        if event.state == ActionState.QUEUED:
            return
        if printed < _PLAIN_LINES:
            record = actions.get(event.action)
            task = record.task if record is not None else "?"
            took = _dur(record) if record is not None and ActionState(event.state).done else ""
            stream.write(f"[{time.monotonic() - start:7.2f}s] {event.action} {task} {event.state} {took}\n")
            printed += 1
            return
        now = time.monotonic()
        if now - last_summary > 5:
            counts = Counter(r.state.value for r in list(actions.values()))
            stream.write(f"[{now - start:7.2f}s] " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + "\n")
            last_summary = now

    async for event in run.events():
        emit(event)
        stream.flush()
