"""The run's progress on stderr: the live tree on a terminal (rendered into a small terminal emulator here, and
through a real pseudo-terminal), and plain lines elsewhere at each verbosity."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import pty
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

import flytelike as fl
from flytelike._cli import cli
from flytelike._cli._live import LiveTree, live_view
from flytelike._cli._progress import plain_view
from flytelike._executor import ActionRecord, ActionState

REPO = Path(__file__).resolve().parents[1]
# An SGR sequence setting a foreground or background colour.
COLOUR = re.compile(r"\x1b\[(?:[0-9]*;)*(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])(?:;[0-9]*)*m")

env = fl.TaskEnvironment(name="live")


@env.task
async def leaf(i: int) -> int:
    await asyncio.sleep(0.01)
    return i


@env.task
async def talker(lines: int) -> int:
    for i in range(lines):
        print(f"talking {i}", file=sys.stderr)
        await asyncio.sleep(0.01)
    return lines


@env.task
async def pair() -> int:
    return await leaf(1) + await leaf(2)


@env.task
async def root(n: int = 20, lines: int = 0) -> int:
    said = talker(lines) if lines else leaf(0)
    values = await asyncio.gather(said, *(leaf(i) for i in range(n)))
    return sum(values) + await pair()


@env.task
async def broken() -> int:
    raise KeyError("shard 3")


@env.task
async def fails() -> int:
    await leaf(1)
    return await broken()


# Each takes every core this process may use, so the second waits for the first.
CORES = len(os.sched_getaffinity(0))


@env.task(resources=fl.Resources(cpu=CORES))
async def hog() -> int:
    await asyncio.sleep(0.3)
    return 1


@env.task
async def hogs() -> int:
    return sum(await asyncio.gather(hog(), hog()))


class Screen:
    """What a terminal shows after some output: text, newlines, carriage returns, cursor up and line erasing."""

    _CSI = re.compile(r"\x1b\[(\??)([0-9;]*)([A-Za-z])")

    def __init__(self) -> None:
        self.rows: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def feed(self, data: str) -> Screen:
        i = 0
        while i < len(data):
            c = data[i]
            if c == "\x1b":
                m = self._CSI.match(data, i)
                assert m is not None, f"unknown escape at {data[i : i + 10]!r}"
                self._control(m.group(1), m.group(2), m.group(3))
                i = m.end()
                continue
            if c == "\r":
                self.col = 0
            elif c == "\n":
                self.row += 1
                self.col = 0
                while len(self.rows) <= self.row:
                    self.rows.append([])
            else:
                line = self.rows[self.row]
                line.extend(" " * (self.col + 1 - len(line)))
                line[self.col] = c
                self.col += 1
            i += 1
        return self

    def _control(self, private: str, args: str, op: str) -> None:
        n = int(args) if args.isdigit() else 1
        if private or op in "mhl":  # cursor visibility, colours
            return
        if op == "A":
            self.row = max(0, self.row - n)
        elif op == "G":
            self.col = n - 1
        elif op == "K":
            line = self.rows[self.row]
            if args == "2":
                line.clear()
            else:
                del line[self.col :]
        else:
            raise AssertionError(f"the emulator does not know ESC[{args}{op}")

    def lines(self) -> list[str]:
        return ["".join(r).rstrip() for r in self.rows]


def _console(out: io.StringIO, **kwargs: object) -> Console:
    return Console(file=out, force_terminal=True, force_interactive=True, width=100, height=30, **kwargs)  # type: ignore[arg-type]


def _live(*args: object, console: Console) -> object:
    runner = fl.Runner(progress=functools.partial(live_view, console=console))
    return runner.run(root, *args).outputs


def test_output_during_redraws_is_printed_above_one_tree() -> None:
    out = io.StringIO()
    assert _live(20, 30, console=_console(out)) == sum(range(20)) + 30 + 3
    raw = out.getvalue()
    assert raw.count("\x1b[1A") > 5  # the tree was redrawn in place, many times
    screen = Screen().feed(raw).lines()
    # Every line the task printed is on screen once, in order, and all of them above the one tree left.
    said = [line for line in screen if line.startswith("talking ")]
    assert said == [f"talking {i}" for i in range(30)]
    roots = [i for i, line in enumerate(screen) if line.split()[:2] == ["0", "live.root"]]
    assert len(roots) == 1, "\n".join(screen)
    assert screen.index("talking 29") < roots[0]
    tree = screen[roots[0] :]
    assert tree[0].split()[:3] == ["0", "live.root", "succeeded"]
    assert any("live.leaf x20: 20 succeeded" in line for line in tree)  # folded
    assert sum(1 for line in tree if line.strip().startswith("0.21.")) == 2  # pair's children, one by one


def test_the_tree_is_cut_to_the_terminal_height_and_width() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=40, height=8)
    runner = fl.Runner(progress=functools.partial(live_view, console=console))
    # Fewer than five siblings are shown one by one, so 4 x 4 nested actions would need 20 lines.
    assert runner.run(root, 3).outputs == 3 + 3
    screen = [line for line in Screen().feed(out.getvalue()).lines() if line]
    assert all(len(line) <= 40 for line in screen)
    assert len(screen) <= 8


def test_states_have_colours_and_no_color_turns_them_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_tree() -> str:
        out = io.StringIO()
        runner = fl.Runner(progress=functools.partial(live_view, console=_console(out)))
        with pytest.raises(fl.errors.TaskFailedError):
            runner.run(fails)
        return out.getvalue()

    coloured = failing_tree()
    assert re.search(r"\x1b\[1;31mfailed", coloured)  # bold red
    assert re.search(r"\x1b\[32msucceeded", coloured)  # green
    monkeypatch.setenv("NO_COLOR", "1")
    plain = failing_tree()
    assert "failed" in plain
    assert "\x1b[1A" in plain  # still redrawn in place
    assert not COLOUR.search(plain)  # bold stays: NO_COLOR is about colour


def test_a_waiting_action_shows_its_reason_in_yellow() -> None:
    out = io.StringIO()
    runner = fl.Runner(progress=functools.partial(live_view, console=_console(out)))
    assert runner.run(hogs).outputs == 2
    assert re.search(r"\x1b\[33mwaiting\s*\x1b\[0m.*\x1b\[33m\s*waiting for cpu, memory or GPUs", out.getvalue())


def _plain(task: fl.Task, verbosity: str) -> str:  # type: ignore[type-arg]
    out = io.StringIO()
    runner = fl.Runner(progress=functools.partial(plain_view, stream=out, verbosity=verbosity))
    with contextlib.suppress(fl.errors.TaskFailedError):
        runner.run(task)
    return out.getvalue()


def _fields(line: str) -> list[str]:
    """Action, task and state of a plain line, after its time stamp (``[   0.01s]``)."""
    assert re.match(r"\[ *\d+\.\d\ds\] ", line), line
    return line.split("] ", 1)[1].split()[:3]


def test_plain_default_is_a_start_line_the_failures_and_a_summary() -> None:
    lines = _plain(fails, "normal").splitlines()
    assert re.fullmatch(r"run \S+: live\.fails started \(flytelike runs show \S+\)", lines[0])
    assert [_fields(line) for line in lines[1:-1]] == [
        ["0.1", "live.broken", "failed:"],
        ["0", "live.fails", "failed:"],
    ]
    assert "KeyError: 'shard 3'" in lines[1]
    assert re.fullmatch(r"run \S+ failed in \d+\.\d\ds: 3 actions \(2 failed, 1 succeeded\)", lines[-1])
    assert "\x1b" not in "".join(lines)


def test_plain_verbose_is_every_state_change() -> None:
    lines = _plain(fails, "verbose").splitlines()
    changes = [_fields(line) for line in lines[1:-1]]
    assert ["0.0", "live.leaf", "running"] in changes
    assert ["0.0", "live.leaf", "succeeded"] in changes
    assert ["0.1", "live.broken", "failed:"] in changes
    assert lines[-1].startswith("run ")


def test_plain_quiet_is_only_the_failures() -> None:
    lines = _plain(fails, "quiet").splitlines()
    assert [_fields(line) for line in lines] == [["0.1", "live.broken", "failed:"], ["0", "live.fails", "failed:"]]
    assert _plain(pair, "quiet") == ""


TASKS = """
    import asyncio
    import sys
    import flytelike as fl

    env = fl.TaskEnvironment(name="tty")

    @env.task
    async def leaf(i: int) -> int:
        print(f"leaf {i} says hi", file=sys.stderr)
        await asyncio.sleep(0.05)
        return i

    @env.task
    async def main(n: int = 3) -> int:
        return sum(await asyncio.gather(*(leaf(i) for i in range(n))))
"""


def _in_a_terminal(tmp_path: Path, *args: str, inputs: tuple[str, ...] = (), **env_vars: str) -> str:
    """Run `flytelike run` with stderr (and stdout) on a pseudo-terminal; what the terminal received."""
    file = tmp_path / "tty_tasks.py"
    file.write_text(textwrap.dedent(TASKS))
    primary, secondary = pty.openpty()
    env_ = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm", "COLUMNS": "100", "LINES": "30", **env_vars}
    if "NO_COLOR" not in env_vars:
        env_.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flytelike", "run", *args, str(file), "main", *inputs],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env_,
        cwd=tmp_path,
    )
    os.close(secondary)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_a_real_terminal_gets_the_live_tree_with_task_output_above_it(tmp_path: Path) -> None:
    raw = _in_a_terminal(tmp_path)
    screen = Screen().feed(raw.replace("\r\n", "\n")).lines()
    roots = [i for i, line in enumerate(screen) if line.split()[:2] == ["0", "tty.main"]]
    assert len(roots) == 1, "\n".join(screen)
    assert sorted(line for line in screen[: roots[0]] if "says hi" in line) == [f"leaf {i} says hi" for i in range(3)]
    assert screen[roots[0]].split()[2] == "succeeded"
    assert "3" in screen[roots[0] + 1 :]  # the output, after the tree
    assert "\x1b[32m" in raw


def test_the_live_tree_stays_intact_while_50_tasks_print(tmp_path: Path) -> None:
    raw = _in_a_terminal(tmp_path, inputs=("--n", "50"), LINES="40")
    screen = Screen().feed(raw.replace("\r\n", "\n")).lines()
    roots = [i for i, line in enumerate(screen) if line.split()[:2] == ["0", "tty.main"]]
    assert len(roots) == 1, "\n".join(screen)  # one tree, not broken copies of it between the lines
    printed = [line for line in screen[: roots[0]] if "says hi" in line]
    assert sorted(printed) == sorted(f"leaf {i} says hi" for i in range(50))  # every line, whole, above the tree
    assert screen[roots[0]].split()[2] == "succeeded"


def test_no_color_on_a_real_terminal(tmp_path: Path) -> None:
    raw = _in_a_terminal(tmp_path, NO_COLOR="1")
    assert "tty.main" in raw
    assert not COLOUR.search(raw)


def test_quiet_on_a_terminal_shows_no_tree(tmp_path: Path) -> None:
    raw = _in_a_terminal(tmp_path, "-q")
    assert "tty.main" not in raw
    assert "leaf 0 says hi" in raw


class _Handle:
    def __init__(self, actions: dict[str, ActionRecord]) -> None:
        self._actions = actions

    def actions(self) -> dict[str, ActionRecord]:
        return self._actions


def test_a_tree_of_100000_actions_is_folded_and_quick_to_draw() -> None:
    actions = {"0": ActionRecord("r", "0", None, "big.main", "v", state=ActionState.RUNNING)}
    for i in range(100_000):
        state = ActionState.SUCCEEDED if i % 4 else ActionState.RUNNING
        actions[f"0.{i}"] = ActionRecord("r", f"0.{i}", "0", "big.leaf", "v", state=state)
    tree = LiveTree(_Handle(actions), {})  # type: ignore[arg-type]
    started = time.perf_counter()
    text = tree.render(100, 30)
    took = time.perf_counter() - started
    assert text.plain.splitlines()[1].strip() == "big.leaf x100000: 25000 running, 75000 succeeded"
    assert took < 0.5, f"{took:.3f}s to build the tree"


def test_verbose_and_quiet_together_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "tty_tasks.py"
    file.write_text(textwrap.dedent(TASKS))
    result = CliRunner().invoke(cli, ["run", "-v", "-q", str(file), "main"])
    assert result.exit_code == 2
    assert "-v/--verbose and -q/--quiet cannot be given together" in result.stderr


@env.task
async def dots() -> int:
    for _ in range(3):
        print(".", end="", file=sys.stderr, flush=True)
        await asyncio.sleep(0.3)
    print(" done", file=sys.stderr)
    return 3


def test_a_line_without_its_end_is_shown_after_a_while_and_not_erased_by_the_tree() -> None:
    out = io.StringIO()
    runner = fl.Runner(progress=functools.partial(live_view, console=_console(out)))
    assert runner.run(dots).outputs == 3
    screen = [line for line in Screen().feed(out.getvalue()).lines() if line]
    # Each part is on screen once, above the tree, whether it waited for its newline or not.
    above = screen[: next(i for i, line in enumerate(screen) if line.startswith("0 "))]
    assert "".join(above).replace(" ", "") == "...done"
