"""Runs a command as a local OS process the way a container runtime would: its own environment, working directory,
memory limit and deadline, its output in a file.

The reference out-of-process backend (:class:`~flytelike.testing.SubprocessBackend`) and the Kubernetes and Batch
emulators' job runners start every task process through a :class:`Launcher`, so the three behave alike: the
environment is exactly the one given (nothing inherited), the process gets its own session (killing it kills what
it started), the memory of the whole process tree is watched and past the limit the tree is killed (as the kernel's
OOM killer would kill a container: exit 137, ``oom_killed``), and past the deadline the tree is killed too
(``timed_out``).

Example:
    >>> import anyio, sys
    >>> async def main() -> tuple[int, str]:
    ...     async with Launcher() as launcher:
    ...         process = await launcher.start(LaunchInput([sys.executable, "-c", "print('hi')"], env={}))
    ...         exit = await process.wait()
    ...         return exit.returncode, process.output()
    >>> anyio.run(main)
    (0, 'hi\\n')
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import anyio
import anyio.abc

from flytelike._backends.local._memory import MemoryWatch, MemoryWatcher, kill_tree

__all__ = ["LaunchInput", "Launched", "Launcher", "ProcessExit"]

OOM_EXIT = 137
"""The exit code of a process killed by SIGKILL, as container runtimes report an out-of-memory kill."""


@dataclass(frozen=True, slots=True)
class LaunchInput:
    """A process to start.

    Attributes:
        command: the program and its arguments.
        env: the whole environment of the process; nothing of this process's environment is inherited.
        cwd: its working directory; None: a new empty directory, removed when the process has ended.
        memory_limit: bytes of resident memory for the process and everything it starts; 0: no limit.
        timeout: seconds from the start after which the process tree is killed; None: no deadline.
        output: the file its stdout and stderr go to (appended); None: a file in a new directory, removed on close.
    """

    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    memory_limit: int = 0
    timeout: float | None = None
    output: Path | None = None


@dataclass(frozen=True, slots=True)
class ProcessExit:
    """How a launched process ended.

    Attributes:
        returncode: its exit status; a process killed by a signal has ``128 + signal`` as a container runtime
            reports it (137 for SIGKILL).
        oom_killed: killed for going past its memory limit.
        timed_out: killed at its deadline.
        killed: killed by :meth:`Launched.kill`.
        peak_memory: the highest resident memory of its tree seen (bytes; 0 when it had no limit to watch).
    """

    returncode: int
    oom_killed: bool = False
    timed_out: bool = False
    killed: bool = False
    peak_memory: int = 0


class Launched:
    """A process started by a :class:`Launcher`."""

    def __init__(
        self,
        process: anyio.abc.Process,
        spec: LaunchInput,
        output: Path,
        watch: MemoryWatch | None,
        launcher: Launcher,
        cleanup: list[Path],
    ) -> None:
        self._process = process
        self._spec = spec
        self.output_path = output
        self._watch = watch
        self._launcher = launcher
        self._cleanup = cleanup
        self._exit: ProcessExit | None = None
        self._killed = False
        self._timed_out = False
        self._ended = anyio.Event()
        self._waiting = False

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def exit(self) -> ProcessExit | None:
        """How it ended; None while it runs."""
        return self._exit

    def output(self) -> str:
        """What it has written so far (stdout and stderr, in the order written)."""
        try:
            return self.output_path.read_text(errors="replace")
        except OSError:
            return ""

    async def wait(self) -> ProcessExit:
        """Wait for the process to end (killing it at its deadline). Cancelled, it kills the process tree first."""
        if self._exit is not None:
            return self._exit
        if self._waiting:
            await self._ended.wait()
            return self._ended_exit()
        self._waiting = True
        try:
            deadline = self._spec.timeout
            with anyio.move_on_after(deadline if deadline is not None else float("inf")) as scope:
                await self._process.wait()
            if scope.cancelled_caught:
                self._timed_out = True
                await self._kill_and_reap()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._kill_and_reap()
                self._finish()
            raise
        return self._finish()

    def _ended_exit(self) -> ProcessExit:
        # Set by whoever waited first; a method, so the type checker does not hold on to an earlier narrowing.
        assert self._exit is not None
        return self._exit

    async def kill(self) -> None:
        """Kill the process and everything it started (SIGKILL to its session)."""
        if self._exit is None:
            self._killed = True
            self._signal_tree()

    async def terminate(self, grace: float = 5.0) -> None:
        """SIGTERM the process, then SIGKILL its tree if it has not ended after ``grace`` seconds."""
        if self._exit is not None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self._process.pid, signal.SIGTERM)
        with anyio.move_on_after(grace):
            await self._ended.wait()
        if self._exit is None:
            await self.kill()

    async def _kill_and_reap(self) -> None:
        self._signal_tree()
        await self._process.wait()

    def _signal_tree(self) -> None:
        watch = self._watch
        kill_tree(self._process.pid, watch.tree if watch is not None else ())

    def _finish(self) -> ProcessExit:
        if self._exit is not None:
            return self._exit
        watch = self._watch
        if watch is not None:
            self._launcher._memory.unwatch(watch)
        code = self._process.returncode
        assert code is not None
        returncode = 128 - code if code < 0 else code
        oom = watch is not None and watch.killed
        self._exit = ProcessExit(
            returncode=OOM_EXIT if oom else returncode,
            oom_killed=oom,
            timed_out=self._timed_out and not oom,
            killed=self._killed and not oom and not self._timed_out,
            peak_memory=watch.peak if watch is not None else 0,
        )
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._launcher._running.discard(self)
        self._ended.set()
        return self._exit


class Launcher:
    """Starts processes (see the module's docstring); leaving it kills any still running."""

    def __init__(self) -> None:
        self._memory = MemoryWatcher()
        self._running: set[Launched] = set()
        self._scratch: Path | None = None

    async def __aenter__(self) -> Launcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            for process in list(self._running):
                await process.kill()
                await process.wait()
            await anyio.to_thread.run_sync(self._memory.close)
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None

    async def start(self, spec: LaunchInput) -> Launched:
        """Start ``spec``'s process; :meth:`Launched.wait` for its end."""
        if not spec.command:
            raise ValueError("LaunchInput.command is empty: give the program to run and its arguments")
        cleanup: list[Path] = []
        cwd = spec.cwd
        if cwd is None:
            cwd = Path(tempfile.mkdtemp(prefix="work-", dir=self._scratch_dir()))
            cleanup.append(cwd)
        output = spec.output
        if output is None:
            folder = Path(tempfile.mkdtemp(prefix="out-", dir=self._scratch_dir()))
            output = folder / "output.log"
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(output, "ab") as sink:
            process = await anyio.open_process(
                list(spec.command),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(spec.env),
                start_new_session=True,
            )
        watch = self._memory.watch(process.pid, spec.memory_limit) if spec.memory_limit else None
        launched = Launched(process, spec, output, watch, self, cleanup)
        self._running.add(launched)
        return launched

    def _scratch_dir(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="flytelike-launch-"))
        return self._scratch
