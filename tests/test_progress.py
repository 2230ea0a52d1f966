"""The run progress views: a live, folded action tree for terminals and plain lines for logs."""

from __future__ import annotations

import asyncio
import io

import flytelike as fl
from flytelike._cli._progress import live_view, plain_view
from flytelike._runtime import RunHandle

env = fl.TaskEnvironment(name="prog")


@env.task
async def leaf(i: int) -> int:
    await asyncio.sleep(0.01)
    return i


@env.task
async def pair() -> int:
    return await leaf(1) + await leaf(2)


@env.task
async def root(n: int = 20) -> int:
    return sum(await asyncio.gather(*(leaf(i) for i in range(n)))) + await pair()


def _render(view: str) -> str:
    out = io.StringIO()

    async def progress(run: RunHandle) -> None:
        await (live_view if view == "live" else plain_view)(run, out)

    assert fl.Runner(progress=progress).run(root, 20).outputs == sum(range(20)) + 3
    return out.getvalue()


def test_live_view_folds_wide_fan_outs_and_redraws_in_place() -> None:
    text = _render("live")
    final = text.rsplit("\x1b[2K", 1)[-1]  # what is on screen after the last redraw
    lines = [line for line in final.splitlines() if line.strip()]
    assert lines[0].split()[:3] == ["0", "prog.root", "succeeded"]
    assert "prog.leaf x20: 20 succeeded" in final
    # Small groups are not folded: pair's two children show one by one, nested under it.
    assert any(line.split()[:3] == ["0.20", "prog.pair", "succeeded"] for line in lines)
    assert sum(1 for line in lines if line.strip().startswith("0.20.")) == 2
    assert "\x1b[1A" in text  # cursor moved up: the tree was redrawn, not appended


def test_plain_view_prints_one_line_per_state_change() -> None:
    text = _render("plain")
    lines = text.splitlines()
    finished = [line for line in lines if line.split()[-2:-1] == ["succeeded"]]
    assert {line.split()[2] for line in finished} >= {"0", "0.0", "0.19", "0.20", "0.20.0", "0.20.1"}
    assert "\x1b" not in text
