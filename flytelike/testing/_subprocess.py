"""The reference out-of-process backend: every attempt runs ``flytelike-entry`` as a new OS process.

Each process starts in an empty working directory with a scrubbed environment: the store, the controller's
address and the run's token, the task's own ``env_vars``, and a home for the bundle cache. It shares nothing else
with the controller, so a run through it takes the whole remote path (code bundle, blob store, entrypoint,
controller) that a pod or a Batch job takes, on one machine and without a cloud. The Kubernetes and Batch emulators
start their processes through the same :class:`~flytelike.testing.Launcher`.

To use it: ``Runtime(backends={"local": SubprocessBackend.from_input})`` runs every task of a run that way (see
``docs/remote.md``).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from flytelike._backends import BackendInput
from flytelike._backends._remote import RemoteServices, prepare_attempt, read_attempt, stored_outcome
from flytelike._executor import ActionRecord, AdmitInput, AttemptInput, AttemptResult, ExecTask
from flytelike.errors import BackendError
from flytelike.testing._launcher import Launcher, LaunchInput

__all__ = ["SubprocessBackend"]


class _NoLease:
    """Admission is the platform's business (a scheduler's, here the operating system's)."""

    def release(self) -> None:
        pass

    def suspend(self) -> None:
        pass

    async def resume(self) -> None:
        pass


class SubprocessBackend:
    """Runs each attempt as ``python -m flytelike.entry ...`` in a new process (see the module's docstring).

    Args:
        remote: the runtime's store, bundles and controller.
        home: ``FLYTELIKE_HOME`` of the task processes (their bundle cache); default: a new temporary directory.
        python: the interpreter to run the entrypoint with (one where flytelike is installed).
    """

    name = "subprocess"

    def __init__(self, remote: RemoteServices, *, home: Path | None = None, python: str | None = None) -> None:
        self._remote = remote
        self._home = home
        self._python = python or sys.executable
        self._launcher = Launcher()
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.launched = 0  # processes started, for tests and benchmarks
        self.commands: list[tuple[str, ...]] = []  # their command lines, in start order

    @classmethod
    def from_input(cls, spec: BackendInput) -> SubprocessBackend:
        """The backend for a runtime (``Runtime(backends={"local": SubprocessBackend.from_input})``)."""
        if spec.remote is None:
            raise BackendError("the subprocess backend needs the runtime's remote services (store, controller)")
        home = spec.options.get("home")
        return cls(spec.remote, home=Path(home) if home else None, python=spec.options.get("python"))

    async def __aenter__(self) -> SubprocessBackend:
        await self._launcher.__aenter__()
        if self._home is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="flytelike-subprocess-")
            self._home = Path(self._scratch.name)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._launcher.__aexit__(exc_type, exc, tb)
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def check(self, tasks: Sequence[ExecTask]) -> None:
        for task in tasks:
            if not self._remote.in_process.from_template(task) and self._remote.in_process.code_file(task) is None:
                raise BackendError(
                    f"task {task.name} cannot run in a separate process: its module has no file to ship as a "
                    "code bundle (define it in a .py file)"
                )

    async def admit(self, request: AdmitInput) -> _NoLease:
        return _NoLease()

    async def run_attempt(self, attempt: AttemptInput) -> AttemptResult:
        launch = await prepare_attempt(self._remote, attempt, platform=self.name)
        env = {**launch.env, "FLYTELIKE_HOME": str(self._home)}
        command = (self._python, "-m", "flytelike.entry", *launch.args)
        try:
            if attempt.resumed:
                # A process of the controller before cannot be found again; its end can, if it wrote one. Otherwise
                # this attempt is given up (a system failure: the next attempt has a prefix of its own), never run a
                # second time beside a process that may still be going.
                stored = await stored_outcome(self._remote, attempt, launch)
                if stored is not None:
                    return stored
                raise BackendError(
                    f"attempt {attempt.attempt} of action {attempt.action.id} was started by a controller that "
                    "stopped; its process cannot be found again"
                )
            process = await self._launcher.start(LaunchInput(command, env=env, memory_limit=attempt.memory))
            self.launched += 1
            self.commands.append(command)
            exit = await process.wait()
            return await read_attempt(
                self._remote,
                attempt,
                launch,
                exit_code=exit.returncode,
                oom_killed=exit.oom_killed,
                output=process.output(),
            )
        finally:
            if launch.calls_back:
                self._remote.attempt_ended(attempt.run, attempt.action)

    async def logs(self, action: ActionRecord, attempt: int) -> str:
        return "".join(action.logs or ())
