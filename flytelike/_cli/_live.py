"""The live view of a running run on a terminal: an action tree redrawn in place, task output printed above it.

Only ``flytelike run`` on a terminal imports this module (and rich with it); runs to a pipe or a file never pay for
rich. The tree follows the run's events and is redrawn at most a few times a second and only after a change; what
tasks write to stdout and stderr is collected while the tree is up and printed above it at each tick, whole lines
at a time, so output never tears the tree. Wide fan-outs are folded (siblings running the same task show as one
line with counts per state, so a 10,000-way ``asyncio.gather`` stays a few lines tall) and the tree is cut to the
terminal's height; a run of 100,000 actions is redrawn less often, as the tree costs more to build.

Colours: failures red, waiting and retrying yellow (with the reason), success green, running blue. ``NO_COLOR``
turns them off (rich honours it); ``TERM=dumb`` turns the redrawing off (the final tree is printed once).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO, cast

import anyio
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.text import Text

from flytelike._capture import passthrough, redirected
from flytelike._executor import ActionRecord, ActionState, Event

if TYPE_CHECKING:
    from flytelike._runtime import RunHandle

__all__ = ["STYLES", "LiveTree", "live_view"]

STYLES: dict[ActionState, str] = {
    ActionState.QUEUED: "dim",
    ActionState.WAITING: "yellow",
    ActionState.INITIALIZING: "cyan",
    ActionState.RUNNING: "blue",
    ActionState.RETRYING: "yellow",
    ActionState.SUCCEEDED: "green",
    ActionState.CACHED: "green",
    ActionState.FAILED: "bold red",
    ActionState.TIMED_OUT: "bold red",
    ActionState.ABORTED: "magenta",
}
_FOLD = 4
_Children = dict[str | None, list[ActionRecord]]
_TICK = 0.05  # how often collected output is printed
_PARTIAL_AFTER = 0.5  # seconds a line without its newline waits before it is printed anyway


def _dur(r: ActionRecord) -> str:
    d = r.duration
    return "" if d is None else f"{d:.2f}s"


def _counts(records: Iterable[ActionRecord]) -> Text:
    counts = Counter(r.state for r in records)
    text = Text()
    for i, (state, n) in enumerate(sorted(counts.items(), key=lambda kv: kv[0].value)):
        if i:
            text.append(", ")
        text.append(f"{n} {state.value}", style=STYLES[state])
    return text


class LiveTree:
    """The run's action tree as rich text, folded, at most ``height`` lines of ``width`` cells.

    Args:
        run: the live run.
        reasons: why an action waits or retries, by action id (from the events).
    """

    def __init__(self, run: RunHandle, reasons: dict[str, str]) -> None:
        self._run = run
        self._reasons = reasons

    def render(self, width: int, height: int) -> Text:
        children: _Children = defaultdict(list)
        for r in list(self._run.actions().values()):
            children[r.parent].append(r)
        lines: list[Text] = []
        self._walk(children, None, 0, lines, max(1, height))
        if len(lines) > height:
            lines = [*lines[: height - 1], Text(f"... {len(lines) - height + 1}+ more lines", style="dim")]
        for line in lines:
            line.truncate(width, overflow="ellipsis")
        out = Text("\n").join(lines)
        out.no_wrap = True
        return out

    def _walk(self, children: _Children, parent: str | None, depth: int, lines: list[Text], most: int) -> None:
        by_task: dict[str, list[ActionRecord]] = defaultdict(list)
        labelled: dict[str, list[ActionRecord]] = defaultdict(list)
        for k in children.get(parent, []):
            (by_task[k.task] if k.group_name is None else labelled[k.group_name]).append(k)
        pad = "  " * depth
        for name, members in labelled.items():  # an fl.group: always one folded node
            lines.append(Text(f"{pad}group {name} x{len(members)}: ").append_text(_counts(members)))
        for task, group in by_task.items():
            if len(lines) > most:  # cut to the screen: nothing below would be seen
                return
            if len(group) > _FOLD:
                lines.append(Text(f"{pad}{task} x{len(group)}: ").append_text(_counts(group)))
                continue
            for r in group:
                lines.append(self._line(r, pad))
                self._walk(children, r.id, depth + 1, lines, most)

    def _line(self, r: ActionRecord, pad: str) -> Text:
        line = Text(f"{pad}{r.id:<8} {r.task:<30} ")
        line.append(f"{r.state.value:<10}", style=STYLES[r.state])
        line.append(f" {_dur(r):>8}")
        if r.attempts > 1:
            line.append(f" attempt {r.attempts}")
        reason = self._reasons.get(r.id)
        if reason and r.state in (ActionState.WAITING, ActionState.RETRYING):
            line.append(f"  {reason}", style=STYLES[r.state])
        return line


class _Raw:
    """Task output as it was written: no markup, wrapping or cropping by rich."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Segment(self.text)


class _Collect:
    """A text stream that keeps what is written until the view prints it (tasks write from any thread)."""

    def __init__(self, like: TextIO) -> None:
        self._parts: list[str] = []
        self._lock = threading.Lock()
        self._like = like
        self._since = 0.0

    def write(self, text: str) -> int:
        if text:
            with self._lock:
                if not self._parts:
                    self._since = time.monotonic()
                self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: the view prints collected output at its next tick."""

    def take(self, *, everything: bool = False) -> str:
        """Collected whole lines (and a partial one that waited long enough, or with ``everything``)."""
        with self._lock:
            if not self._parts:
                return ""
            text = "".join(self._parts)
            cut = len(text) if everything or time.monotonic() - self._since > _PARTIAL_AFTER else text.rfind("\n") + 1
            rest = text[cut:]
            self._parts = [rest] if rest else []
            if cut:
                self._since = time.monotonic()  # what is left is a new line, begun after what was taken
            return text[:cut]

    def __getattr__(self, name: str) -> object:
        # encoding, isatty(), fileno() and the like, as the terminal's stream has them.
        return getattr(self._like, name)


async def live_view(run: RunHandle, console: Console | None = None) -> None:
    """Show the run's action tree on ``console`` (default: stderr) until cancelled, task output above it."""
    # The terminal itself, not the capturing stream in front of it, which hands task output to this view.
    console = console or Console(file=passthrough(sys.stderr))
    reasons: dict[str, str] = {}
    changed = anyio.Event()
    tree = LiveTree(run, reasons)
    actions = run.actions()

    def on_event(event: Event) -> None:
        if event.reason:
            reasons[event.action] = event.reason
        else:
            reasons.pop(event.action, None)

    async def watch() -> None:
        nonlocal changed
        async for event in run.events():
            on_event(event)
            changed.set()

    def tree_now() -> Text:
        return tree.render(console.width, max(3, console.height - 2))

    err = _Collect(passthrough(sys.stderr))
    # Task stdout goes above the tree only when it is a terminal too; redirected to a file, it stays there.
    out = _Collect(passthrough(sys.stdout)) if _is_terminal(sys.stdout) else None
    live = Live(tree_now(), console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)

    def print_output(everything: bool = False) -> None:
        for collect in (out, err):
            text = collect.take(everything=everything) if collect is not None else ""
            if text:
                # A line printed before its end (it waited too long) ends here: the tree starts on a line of its own.
                if not text.endswith("\n"):
                    text += "\n"
                console.print(_Raw(text), crop=False, soft_wrap=True, markup=False, highlight=False)

    # A collector is a text stream for all that writers use (write, flush, the rest passed to the terminal's).
    with redirected(cast(TextIO | None, out), cast(TextIO, err)), live:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                drawn = 0.0
                while True:
                    await anyio.sleep(_TICK)
                    print_output()
                    # A larger tree costs more to build: redraw it less often (100,000 actions: 2.5 times a second).
                    every = 0.2 + len(actions) / 500_000
                    if changed.is_set() and time.monotonic() - drawn >= every:
                        changed = anyio.Event()
                        live.update(tree_now(), refresh=True)
                        drawn = time.monotonic()
        finally:
            print_output(everything=True)
            live.update(tree_now(), refresh=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
