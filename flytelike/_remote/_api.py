"""``fl.Remote``: run tasks on a ``flytelike serve`` control plane from Python, and follow them.

The task's project is bundled here and uploaded unless the server has it; the server gets the root's template, its
inputs as literal bytes and the bundle's digest, and never imports the code. A :class:`RemoteRun` follows the run
through the server's watch stream, so its events and action tree are those a local run's handle gives.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio

from flytelike._bundle import build_bundle
from flytelike._config import Settings, load_settings
from flytelike._executor import ActionRecord, ActionState, Event
from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._run_client import RunClient
from flytelike._serde import decode_values, encode_values, task_template
from flytelike._task import Task
from flytelike.errors import CancelledError, RunError, SpecError

__all__ = ["Remote", "RemoteRun", "create_request", "remote_token"]


def _code_file(task: Task[..., Any]) -> str:
    module = sys.modules.get(getattr(task.fn, "__module__", ""))
    path = getattr(module, "__file__", None)
    if not path:
        raise SpecError(
            "task",
            task.full_name,
            "is not defined in a .py file, so its code cannot be bundled",
            accepted="a task of a file",
        )
    return str(Path(path).resolve())


def _module(root: Path, code_file: str) -> str:
    parts = list(Path(code_file).relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


async def create_request(
    client: RunClient,
    task: Task[..., Any],
    inputs: Mapping[str, Any],
    *,
    settings: Settings,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> runs_pb2.CreateRunRequest:
    """Bundle the task's project, upload it unless the server has it, and describe the run to create.

    Raises:
        SpecError / ValueConversionError: ``task`` is not a task of a file, or the inputs do not match it.
        BundleError: the project cannot be bundled.
    """
    if not isinstance(task, Task):
        raise SpecError("run", task, "not a task", accepted="a function decorated with @env.task")
    values = task.interface.bind((), inputs, task=task.full_name)
    code_file = _code_file(task)
    cache = settings.home / "cache" / "bundles"
    bundle = await anyio.to_thread.run_sync(lambda: build_bundle(code_file, hash_cache=cache))
    await client.upload_bundle(bundle.digest, bundle.write_to, cache)
    template = task_template(task, task.resolved(None))
    key = f"{template.id.name}@{template.id.version}"
    return runs_pb2.CreateRunRequest(
        root=key,
        tasks=[runs_pb2.TaskCode(template=template, module=_module(bundle.root, code_file))],
        inputs=encode_values(values, task.interface.inputs, where=task.full_name),
        inputs_json=json.dumps({k: _jsonable(v) for k, v in values.items()}, default=repr, sort_keys=True)[:10_000],
        bundle_digest=bundle.digest,
        name=name or "",
        labels=dict(labels or {}),
        platform=platform or "",
    )


class RemoteRun:
    """A run on a control plane: wait for it, follow its events, cancel it (the local handle's methods, async).

    Attributes:
        id: the run's id on the server.
        task: the root task's name.
        run_token: a token that may read and abort this run only (to hand to someone who should watch it).
    """

    def __init__(self, client: RunClient, run: runs_pb2.Run, task: Task[..., Any] | None, run_token: str) -> None:
        self._client = client
        self._task = task
        self.id = run.id
        self.task = run.task
        self.run_token = run_token
        self._actions: dict[str, ActionRecord] = {}
        self.state = run.state

    def actions(self) -> Mapping[str, ActionRecord]:
        """The actions seen so far through :meth:`events` (what a progress view draws)."""
        return self._actions

    def events(self, *, after_seq: int = 0) -> AsyncIterator[Event]:
        """The run's action events after ``after_seq``, until it ends (resumed across broken streams)."""
        return self._events(after_seq)

    async def _events(self, after_seq: int) -> AsyncIterator[Event]:
        async for item in self._client.watch(self.id, after_seq=after_seq):
            if item.WhichOneof("item") != "event":
                continue
            e = item.event
            if not e.action_id:
                self.state = e.state
                continue
            self._note(e)
            yield Event(self.id, e.seq, e.action_id, e.state, e.attempt, e.time, e.kind, e.reason)

    def _note(self, e: runs_pb2.Event) -> None:
        record = self._actions.get(e.action_id)
        if record is None:
            name, _, version = e.task.partition("@")
            record = self._actions[e.action_id] = ActionRecord(
                self.id, e.action_id, e.parent or None, name, version, created=e.time
            )
        state = ActionState(e.state)
        record.state = state
        record.attempts = max(record.attempts, e.attempt)
        if state is ActionState.RUNNING and record.started is None:
            record.started = e.time
        if state.done:
            record.ended = e.time
            record.started = record.started or e.time
            if e.reason and state is not ActionState.SUCCEEDED:
                record.error = e.reason

    async def wait(self) -> runs_pb2.Run:
        """Wait for the run to end; the run as the server recorded it."""
        async for item in self._client.watch(self.id):
            if item.WhichOneof("item") == "event" and not item.event.action_id:
                self.state = item.event.state
        run = await self._client.get_run(self.id)
        self.state = run.state
        return run

    async def result(self) -> Any:
        """Wait for the run to end; the root task's return value, or its failure raised.

        Raises:
            CancelledError: the run was aborted.
            RunError: it failed, or was lost.
        """
        run = await self.wait()
        if run.state == "aborted":
            raise CancelledError(f"run {run.id} was aborted: {run.error}")
        if run.state != "succeeded":
            raise RunError(f"run {run.id} {run.state}: {run.error}")
        data = (await self._client.outputs(self.id)).outputs
        if self._task is None:
            return data
        interface = self._task.interface
        return interface.result(decode_values(data, interface.outputs, where=f"{self._task.full_name} outputs"))

    async def cancel(self, reason: str = "") -> bool:
        """Ask the server to abort the run; False when it had ended already."""
        return await self._client.abort(self.id, reason=reason)


class Remote:
    """A control plane (``flytelike serve``) to run tasks on; an async context manager holding its connection.

    Args:
        endpoint: ``HOST:PORT``, ``grpc://HOST:PORT`` or ``grpcs://HOST:PORT``; default ``[remote] endpoint``.
        token: the server's token; default ``[remote] token``.
        settings: the settings to read the defaults and the bundle cache from.

    Example:
        >>> import flytelike as fl
        >>> async def main(remote_task) -> None:  # doctest: +SKIP
        ...     async with fl.Remote("127.0.0.1:8470", token="...") as remote:
        ...         run = await remote.run(remote_task, n=3)
        ...         print(run.id, await run.result())
    """

    def __init__(self, endpoint: str | None = None, *, token: str | None = None, settings: Settings | None = None):
        self.settings = settings or load_settings()
        remote = self.settings.remote
        self.endpoint = endpoint or remote.endpoint
        self._client = RunClient(self.endpoint, token=token if token is not None else remote_token(self.settings))
        self._entered = False

    async def __aenter__(self) -> Remote:
        await self._client.__aenter__()
        self._entered = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._entered = False
        await self._client.__aexit__(exc_type, exc, tb)

    @property
    def client(self) -> RunClient:
        if not self._entered:
            raise RuntimeError("fl.Remote used outside `async with fl.Remote(...)`")
        return self._client

    async def run(
        self,
        task: Task[..., Any],
        /,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        platform: str | None = None,
        **inputs: Any,
    ) -> RemoteRun:
        """Start ``task`` on the server with ``inputs``; returns once the server has the run."""
        request = await create_request(
            self.client, task, inputs, settings=self.settings, name=name, labels=labels, platform=platform
        )
        created = await self.client.create_run(request)
        return RemoteRun(self.client, created.run, task, created.run_token)

    async def attach(self, run_id: str) -> RemoteRun:
        """A run started earlier (its result is the outputs' literal bytes: the task is not known here)."""
        return RemoteRun(self.client, await self.client.get_run(run_id), None, "")

    async def runs(self, *, limit: int = 20, states: tuple[str, ...] = (), task: str = "") -> list[runs_pb2.Run]:
        """Recent runs on the server, newest first."""
        return await self.client.list_runs(limit=limit, states=states, task=task)

    async def logs(self, run_id: str, action_id: str = "0", *, attempt: int = 0) -> bytes:
        """What an action's attempt (default: its latest) wrote to stdout and stderr."""
        return b"".join([c.data async for c in self.client.tail_logs(run_id, action_id, attempt=attempt)])


def remote_token(settings: Settings) -> str:
    """``[remote] token``, or the content of ``[remote] token_file``."""
    remote = settings.remote
    if remote.token or not remote.token_file:
        return remote.token
    try:
        return Path(remote.token_file).expanduser().read_text().strip()
    except OSError as e:
        raise SpecError("remote.token_file", remote.token_file, f"cannot be read ({e.strerror})") from None
