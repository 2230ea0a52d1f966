"""The Kubernetes backend: one bare pod per attempt, followed through one shared watch per namespace.

An attempt uploads what it needs to the store (:func:`~flytelike._backends._remote.prepare_attempt`), creates its
pod (named after run, action and attempt, so a create that finds the pod there adopts it), and waits on the watch:
the pod's status becomes the action's state (WAITING with the scheduler's message, INITIALIZING, RUNNING) and, at
its end, the attempt's result is read from the store. Its output is followed from the container's log while it runs
(or streamed through the controller, for a task that calls tasks). The pod is deleted when the attempt ends, is
cancelled, or fails: create, log and delete are the three requests an attempt costs, besides the shared watch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from flytelike._backends._input import BackendInput
from flytelike._backends._remote import (
    EntryLaunch,
    RemoteServices,
    prepare_attempt,
    read_attempt,
    record_verdict,
    stored_outcome,
)
from flytelike._backends.kubernetes._api import PodApi, QuotaExceededError
from flytelike._backends.kubernetes._emulated import Emulator, running_emulator
from flytelike._backends.kubernetes._manifest import CONTAINER, PodInput, pod_manifest
from flytelike._backends.kubernetes._names import LABEL_EXECUTOR, pod_name
from flytelike._backends.kubernetes._states import Observation, observe
from flytelike._backends.kubernetes._watch import PodWatch
from flytelike._config import KubernetesSettings
from flytelike._crash import crash_point
from flytelike._executor import ActionRecord, ActionState, AdmitInput, AttemptInput, AttemptResult, ExecTask
from flytelike.errors import BackendError

__all__ = ["POD_HOME", "KubernetesBackend"]

POD_HOME = "/tmp/flytelike"


class _NoLease:
    """Pods are admitted by the cluster's scheduler, not here."""

    def release(self) -> None:
        pass

    def suspend(self) -> None:
        pass

    async def resume(self) -> None:
        pass


class _Follow:
    """The container's log followed into the run's log sink, once the pod runs (one request for the whole pod)."""

    def __init__(self) -> None:
        self.started = False
        self.ended = anyio.Event()

    async def drained(self) -> None:
        """Wait (briefly) for the followed log to end, which it does soon after the container does."""
        if self.started:
            with anyio.move_on_after(2.0):
                await self.ended.wait()


def _failure(message: str, kind: str, *, retryable: bool = True) -> BackendError:
    error = BackendError(message)
    error.failure_kind = kind  # type: ignore[attr-defined]
    if not retryable:
        error.retryable = False  # type: ignore[attr-defined]
    return error


class KubernetesBackend:
    """Runs attempts as pods (see the module's docstring)."""

    name = "kubernetes"
    # The action's states come from its pod (queued once created, then as the watch sees it), not from the executor
    # at the attempt's start: a recorded state of an attempt then means its pod was created.
    reports_states = True

    def __init__(
        self,
        settings: KubernetesSettings,
        remote: RemoteServices,
        background: anyio.abc.TaskGroup,
        *,
        core: Any = None,
        home: Path | None = None,
        executor: str | None = None,
    ) -> None:
        self.settings = settings
        self.home = home
        self.emulator: Emulator | None = None
        self._remote = remote
        self._core = core
        self._client: Any = None
        self.api: PodApi | None = None
        # The label of this controller's pods: its own unless given (a server's, the same after a restart, so that
        # its first list finds the pods the process before started).
        self.executor = executor or f"{os.uname().nodename[:20]}-{os.getpid()}-{os.urandom(3).hex()}".lower()
        self._watches: dict[str, PodWatch] = {}
        self._watch_lock = anyio.Lock()
        self._background = background
        self._scopes: list[anyio.CancelScope] = []
        self._detached = False

    async def __aenter__(self) -> KubernetesBackend:
        core = self._core
        if core is None:
            core = await self._connect()
        self.api = PodApi(core)
        return self

    async def _connect(self) -> Any:
        # Imported here: the Kubernetes client (and aiohttp) cost start-up time that runs without pods never pay.
        from kubernetes.aio import client, config
        from kubernetes.aio.config.config_exception import ConfigException

        configuration = client.Configuration()
        try:
            await config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=self.settings.kubeconfig or None,
                context=self.settings.context or None,
                client_configuration=configuration,
            )
        except (ConfigException, FileNotFoundError) as e:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except ConfigException:
                emulator = running_emulator(self.home)
                if emulator is None:
                    raise BackendError(
                        f"no Kubernetes cluster configured ({e}); set [kubernetes] kubeconfig (or KUBECONFIG), or "
                        "run inside a cluster; to try it here: flytelike emulator kubernetes"
                    ) from None
                # No cluster is configured, and `flytelike emulator kubernetes` runs here: its pods are processes
                # of this machine, started with the emulator's own interpreter unless an entrypoint is configured.
                await config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=emulator.kubeconfig, client_configuration=configuration
                )
                if self.settings.entrypoint == KubernetesSettings().entrypoint:
                    self.settings = dataclasses.replace(self.settings, entrypoint=emulator.entrypoint)
                self.emulator = emulator
        self._client = client.ApiClient(configuration)
        return client.CoreV1Api(self._client)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for scope in self._scopes:
            scope.cancel()
        with anyio.CancelScope(shield=True):
            if self._client is not None:
                await self._client.close()
                self._client = None

    def detach(self) -> None:
        """Leave running, from now on, the pod of every attempt that is cancelled, instead of deleting it.

        For a controller that stops without ending the work it started (``flytelike serve`` on SIGTERM): the one
        that takes its runs over finds these pods by its label and follows them (``resumed`` attempts).
        """
        self._detached = True

    # --- the executor's side ------------------------------------------------------------------------------------

    def check(self, tasks: Sequence[ExecTask]) -> None:
        for task in tasks:
            if not self._remote.in_process.from_template(task) and self._remote.in_process.code_file(task) is None:
                raise BackendError(
                    f"task {task.name} cannot run in a pod: its module has no file to ship as a code bundle "
                    "(define it in a .py file)"
                )

    async def admit(self, request: AdmitInput) -> _NoLease:
        return _NoLease()

    async def logs(self, action: ActionRecord, attempt: int) -> str:
        return "".join(action.logs or ())

    def namespace_of(self, task: ExecTask) -> str:
        return task.template.platform.kubernetes.namespace or self.settings.namespace

    def manifest(self, attempt: AttemptInput, launch: EntryLaunch) -> dict[str, Any]:
        """The pod of ``attempt`` (what ``flytelike show --as kubernetes`` prints, with placeholders)."""
        return pod_manifest(
            PodInput(
                template=attempt.task.template,
                name=pod_name(attempt.run.id, attempt.action.id, attempt.attempt),
                run=attempt.run.id,
                action=attempt.action.id,
                attempt=attempt.attempt,
                executor=self.executor,
                command=[*self.settings.entrypoint, *launch.args],
                # The bundle cache of the pod: /tmp is writable in almost every image, whoever the user is.
                env={**launch.env, "FLYTELIKE_HOME": POD_HOME},
                settings=self.settings,
                memory=attempt.memory,
            )
        )

    async def _watch(self, namespace: str) -> PodWatch:
        watch = self._watches.get(namespace)
        if watch is None:
            async with self._watch_lock:
                watch = self._watches.get(namespace)
                if watch is None:
                    assert self.api is not None
                    watch = PodWatch(self.api, namespace, f"{LABEL_EXECUTOR}={self.executor}")
                    await self._background.start(self._keep_watching, watch)
                    self._watches[namespace] = watch
        return watch

    async def _keep_watching(
        self, watch: PodWatch, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        scope = anyio.CancelScope()
        self._scopes.append(scope)
        with scope:
            await watch.run(task_status=task_status)

    async def run_attempt(self, attempt: AttemptInput) -> AttemptResult:
        assert self.api is not None
        launch = await prepare_attempt(self._remote, attempt, platform=self.name)
        body = self.manifest(attempt, launch)
        name = body["metadata"]["name"]
        namespace = body["metadata"].get("namespace") or self.settings.namespace
        watch = await self._watch(namespace)
        watch.expect(name)
        ended: BaseException | None = None
        try:
            # A resumed attempt (its controller restarted) may have a pod, which the watch's first list found, or
            # may have ended and had its pod removed, which its outcome in the store says: it is never run twice.
            found = attempt.resumed and name in watch.pods
            if attempt.resumed and not found:
                stored = await stored_outcome(self._remote, attempt, launch)
                if stored is not None:
                    return stored
                if attempt.launched:
                    raise _failure(
                        f"pod {namespace}/{name} vanished while its controller was away (deleted, or its node lost)",
                        "system",
                    )
            if not found:
                await self._create(attempt, namespace, body)
                crash_point("created", attempt.action.id)
                attempt.run.report(attempt.action, ActionState.QUEUED, f"pod {name}")
            failure: Exception | None = None
            async with anyio.create_task_group() as tg:  # the log follower's
                try:
                    result = await self._follow(attempt, launch, watch, namespace, name, tg)
                except Exception as e:
                    failure = e  # raised as itself below, not wrapped in the task group's exception group
                finally:
                    tg.cancel_scope.cancel()
            if failure is not None:
                raise failure
            return result
        except BaseException as e:
            ended = e
            raise
        finally:
            with anyio.CancelScope(shield=True):
                if launch.calls_back:
                    self._remote.attempt_ended(attempt.run, attempt.action)
                watch.forget(name)
                # A detached backend leaves the pod of a cancelled attempt for the controller after it.
                if not (self._detached and isinstance(ended, anyio.get_cancelled_exc_class())):
                    if ended is not None:
                        # The pod's end is kept before the pod goes: a controller taking the run over then knows it.
                        with contextlib.suppress(Exception):
                            await record_verdict(self._remote, launch, ended)
                    # A pod that cannot be deleted now ends with its attempt anyway; the watch's next list forgets it.
                    with contextlib.suppress(BackendError):
                        await self.api.delete(namespace, name)

    async def _create(self, attempt: AttemptInput, namespace: str, body: dict[str, Any]) -> None:
        assert self.api is not None
        delay, started = 1.0, time.monotonic()
        while True:
            try:
                await self.api.create(namespace, body)
                return
            except QuotaExceededError as e:
                attempt.run.report(attempt.action, ActionState.WAITING, str(e))
                if time.monotonic() - started > self.settings.pending_timeout:
                    raise _failure(f"pod {body['metadata']['name']}: {e}", "infra") from None
                await anyio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _follow(
        self,
        attempt: AttemptInput,
        launch: EntryLaunch,
        watch: PodWatch,
        namespace: str,
        name: str,
        tg: anyio.abc.TaskGroup,
    ) -> AttemptResult:
        run, action = attempt.run, attempt.action
        waiting_since: float | None = None
        pull_since: float | None = None
        reported: tuple[str, str] | None = None
        follow = _Follow()
        while True:
            changed = watch.changed(name)
            pod = watch.pods.get(name)
            if pod is None and name in watch.gone:
                raise _failure(f"pod {namespace}/{name} was deleted by someone else while its attempt ran", "system")
            seen = observe(pod, container=CONTAINER) if pod is not None else Observation("queued")
            now = time.monotonic()
            if seen.state == "failed":
                return await self._failed(attempt, launch, seen, namespace, name, follow)
            if seen.state == "ended":
                await follow.drained()
                return await read_attempt(
                    self._remote, attempt, launch, exit_code=seen.exit_code, logs_seen=follow.started
                )
            state = {"waiting": ActionState.WAITING, "initializing": ActionState.INITIALIZING}.get(
                seen.state, ActionState.RUNNING if seen.state == "running" else None
            )
            if state is not None and (state.value, seen.message) != reported:
                run.report(action, state, seen.message)
                reported = (state.value, seen.message)
            timeout = math.inf
            if seen.state == "waiting" and not seen.pull_backoff:
                waiting_since = waiting_since or now
                left = self.settings.pending_timeout - (now - waiting_since)
                if left <= 0:
                    raise _failure(
                        f"pod {namespace}/{name} could not be scheduled for {self.settings.pending_timeout:g}s: "
                        f"{seen.message}",
                        "infra",
                    )
                timeout = left
            else:
                waiting_since = None
            if seen.pull_backoff:
                pull_since = pull_since or now
                left = self.settings.image_pull_grace - (now - pull_since)
                if left <= 0:
                    raise _failure(f"pod {namespace}/{name}: {seen.message}", "user")
                timeout = min(timeout, left)
            else:
                pull_since = None
            if seen.state == "running" and not follow.started and not launch.calls_back:
                follow.started = True
                tg.start_soon(self._stream_logs, namespace, name, follow, attempt)
            with anyio.move_on_after(timeout):
                await changed.wait()

    async def _stream_logs(self, namespace: str, name: str, follow: _Follow, attempt: AttemptInput) -> None:
        assert self.api is not None
        try:
            response = await self.api.logs(namespace, name, CONTAINER, follow=True)
        except BackendError:
            follow.ended.set()
            return
        try:
            async for chunk in response.content.iter_any():
                # The container's stdout and stderr come as one stream, interleaved as written.
                attempt.run.logs.append(attempt.action.id, attempt.attempt, chunk, "all")
        except Exception:
            pass
        finally:
            response.release()
            follow.ended.set()

    async def _failed(
        self,
        attempt: AttemptInput,
        launch: EntryLaunch,
        seen: Observation,
        namespace: str,
        name: str,
        follow: _Follow,
    ) -> AttemptResult:
        if seen.failure == "oom":
            await follow.drained()
            return await read_attempt(
                self._remote, attempt, launch, exit_code=seen.exit_code, oom_killed=True, logs_seen=follow.started
            )
        where = f"pod {namespace}/{name}"
        if seen.failure == "timeout":
            error = TimeoutError(f"{where}: {seen.message}")
            error.failure_kind = "timeout"  # type: ignore[attr-defined]
            raise error
        raise _failure(f"{where}: {seen.message}", seen.failure or "system")


def from_input(spec: BackendInput) -> KubernetesBackend:
    if spec.remote is None or spec.background is None:
        raise BackendError("the Kubernetes backend needs the runtime's remote services and a background task group")
    return KubernetesBackend(
        spec.settings.kubernetes,
        spec.remote,
        spec.background,
        core=spec.options.get("core"),
        home=spec.settings.home,
        executor=spec.options.get("executor"),
    )
