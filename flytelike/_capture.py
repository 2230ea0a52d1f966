"""Per-action capture of what in-process tasks print.

``sys.stdout`` and ``sys.stderr`` are wrapped once per process by pass-through streams that also copy each write to
the log of the action running in the current context (the run context's submitter, a context variable, so
concurrent async tasks and their worker threads are told apart, and two runs in one process never see each
other's output). Outside an action a
write only passes through. The wrappers are installed once and never swapped back and forth by runs.

What a wrapper passes through to can be changed for a while (:func:`redirected`): the CLI's live view prints task
output above its action tree that way, with capture going on underneath as before.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO, cast

from flytelike import _context

__all__ = ["echo", "ensure_capture", "install_capture", "passthrough", "redirected"]
_installing = threading.Lock()


class _Tee:
    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self._name = name

    def write(self, text: str) -> int:
        if text:
            log = getattr(_context.current_submitter(), "log", None)
            if log is not None:
                log(text, self._name)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def ensure_capture() -> None:
    """Install the capturing streams unless they are in place (cheap: called before every in-process attempt, since
    whoever else swaps ``sys.stdout``, a test runner for one, removes them)."""
    if type(sys.stdout) is not _Tee or type(sys.stderr) is not _Tee:
        install_capture()


def install_capture() -> None:
    """Wrap ``sys.stdout``/``sys.stderr`` (once; a stream replaced later by someone else is wrapped again)."""
    with _installing:
        if not isinstance(sys.stdout, _Tee):
            sys.stdout = cast(TextIO, _Tee(sys.stdout, "out"))
        if not isinstance(sys.stderr, _Tee):
            sys.stderr = cast(TextIO, _Tee(sys.stderr, "err"))


@contextmanager
def redirected(stdout: TextIO | None, stderr: TextIO | None) -> Iterator[None]:
    """Pass what is written to ``sys.stdout``/``sys.stderr`` on to ``stdout``/``stderr`` (None: leave that one)
    while the block runs, still capturing it per action; restored afterwards.

    Only a program that owns the process (the CLI) calls this; the library never does.
    """
    install_capture()
    tees = [(t, target) for t, target in ((sys.stdout, stdout), (sys.stderr, stderr)) if target is not None]
    saved = []
    for tee, target in tees:
        assert isinstance(tee, _Tee)
        saved.append((tee, tee._stream))
        tee._stream = target
    try:
        yield
    finally:
        for tee, stream in saved:
            tee._stream = stream


def passthrough(stream: TextIO) -> TextIO:
    """What ``stream`` (``sys.stdout`` or ``sys.stderr``) writes to, without the capture in front of it."""
    return stream._stream if isinstance(stream, _Tee) else stream


def echo(text: str) -> None:
    """Write output that was captured elsewhere (a worker process's) to stdout, without capturing it again."""
    target = passthrough(sys.stdout)
    try:
        target.write(text)
        target.flush()
    except (OSError, ValueError):  # a closed or broken stdout loses the echo, not the run
        pass
