"""One attempt through ``flytelike-entry``: what to write before it starts, how to start it, and how to read its end.

:func:`prepare_attempt` uploads what the attempt needs (its project's bundle unless the store has it, its template
and its inputs, with the files they name) and returns the command line and environment of the entrypoint, for a
backend to run wherever it runs things (a local process, a pod, a Batch job). :func:`read_attempt` reads the
attempt's end from the store: ``outputs.pb`` is a success whatever the exit status said, ``error.pb`` a failure
of the kind it names, neither a failure of the platform (what the process printed is kept in the records).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flytelike._crash import crash_point
from flytelike._executor import AttemptInput, AttemptResult, Values
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._storage import AttemptKeys, attempt_prefix, download_refs, inputs_key, upload_refs
from flytelike.errors import BackendError, BlobNotFoundError, OutOfMemoryError, TaskCodeError

if TYPE_CHECKING:
    from flytelike._backends._remote._services import BundleRef, RemoteServices

__all__ = ["EntryLaunch", "entry_args", "prepare_attempt", "read_attempt", "record_verdict", "stored_outcome"]

Kind = worker_pb2.Error.Kind
# Bootstrap failures no retry can fix: the same address, the same code, the same error.
_DETERMINISTIC = frozenset({"flytelike.errors.ControllerUnreachableError", "flytelike.errors.LoadError"})


@dataclass(frozen=True, slots=True)
class EntryLaunch:
    """How to start one attempt's ``flytelike-entry``.

    Attributes:
        args: the entrypoint's arguments (after the program: ``python -m flytelike.entry`` or ``flytelike-entry``).
        env: the environment it needs: the store, the controller's token, and the task's ``env_vars``.
        keys: the attempt's objects in the store.
        calls_back: whether it was given the controller's address (the task may call tasks).
    """

    args: tuple[str, ...]
    env: Mapping[str, str]
    keys: AttemptKeys
    calls_back: bool
    output_prefix: str = field(default="")


def entry_args(
    *,
    run: str,
    action: str,
    attempt: int,
    bundle: BundleRef,
    inputs: str,
    output_prefix: str,
    task: str,
    template: str,
    platform: str,
) -> list[str]:
    """The arguments of ``flytelike-entry`` for one attempt (``--controller`` is added by whoever starts one)."""
    return [
        "--run",
        run,
        "--action",
        action,
        "--attempt",
        str(attempt),
        "--bundle",
        f"{bundle.url}#sha256={bundle.digest}",
        "--inputs",
        inputs,
        "--output-prefix",
        output_prefix,
        "--task",
        f"{bundle.module}:{task}",
        "--template",
        template,
        "--platform",
        platform,
    ]


async def prepare_attempt(services: RemoteServices, attempt: AttemptInput, *, platform: str) -> EntryLaunch:
    """Upload what ``attempt`` needs and say how to start it (see the module's docstring).

    Raises:
        BackendError: the task has no file its code can be bundled from.
    """
    run, action, task = attempt.run, attempt.action, attempt.task
    bundle = await services.bundle_for(run, task, platform)
    template = await services.template(task)
    store = await services.store()
    inputs = await upload_refs(attempt.inputs.data(), store)
    key = inputs_key(run.id, action.id)
    await store.put(key, inputs)
    keys = attempt_prefix(run.id, action.id, attempt.attempt)
    output_prefix = store.url(keys.prefix)
    # The attempt's intent (the event before it, naming its action and number) is recorded before it can exist:
    # a controller taking the run over after a crash then looks for it by name instead of starting it again.
    await run.durable()
    crash_point("intent", action.id)
    args = entry_args(
        run=run.id,
        action=action.id,
        attempt=attempt.attempt,
        bundle=bundle,
        inputs=store.url(key),
        output_prefix=output_prefix,
        task=task.name,
        template=template,
        platform=platform,
    )
    env = {kv.key: kv.value for kv in task.template.container.env}
    env.update(services.store_environment())
    calls_back = services.in_process.may_call(task)
    if calls_back:
        args += ["--controller", await services.controller_address()]
        env["FLYTELIKE_CONTROLLER__TOKEN"] = services.attempt_started(run, action, task, attempt.attempt)
        if services.controller_restarts:
            # This controller comes back after a restart: a task that starts (or calls) while it is away waits.
            env["FLYTELIKE_CONTROLLER__STARTUP_WAIT"] = str(services.settings.controller.reconnect_timeout)
        tls_ca = services.controller_tls_ca
        if tls_ca is not None:
            env["FLYTELIKE_CONTROLLER__TLS_CA"] = tls_ca.decode()
    return EntryLaunch(tuple(args), env, keys, calls_back, output_prefix)


async def read_attempt(
    services: RemoteServices,
    attempt: AttemptInput,
    launch: EntryLaunch,
    *,
    exit_code: int | None,
    oom_killed: bool = False,
    output: str = "",
    logs_seen: bool = False,
) -> AttemptResult:
    """The attempt's result from the store, or its failure raised (see the module's docstring).

    The caller ends the attempt with the services (``attempt_ended``) once it is over, whatever happened here.

    Args:
        exit_code: the process's exit status as the platform reports it (None when unknown).
        oom_killed: the platform killed it for its memory.
        output: what the process printed, as the platform kept it (attached to the records when the attempt's own
            ``logs`` object or the controller did not bring it).
        logs_seen: the backend already put the attempt's output into the records (it followed the container's log).
    """
    run, action = attempt.run, attempt.action
    store = await services.store()
    metrics = await _optional(store.get(launch.keys.metrics))
    if not logs_seen and not services.streamed_logs(run, action, attempt.attempt):
        logs = await _optional(store.get(launch.keys.logs))
        run.logs.append(action.id, attempt.attempt, logs if logs is not None else output, "all")
    outputs = await _optional(store.get(launch.keys.outputs))
    error = await _optional(store.get(launch.keys.error)) if outputs is None else None
    peak, cpu = _metrics(metrics)
    if outputs is not None:
        data = await download_refs(outputs, store, services.data_dir)
        return AttemptResult(Values(data=data), peak_memory=peak, cpu_time=cpu)
    where = f"task {attempt.task.name} (action {action.id}, attempt {attempt.attempt})"
    if oom_killed:
        raise _oom(attempt, f"{where} went past its memory limit of {attempt.memory} bytes and was killed", peak)
    if error is None:
        raise BackendError(
            f"{where} ended (exit status {exit_code}) without writing its outputs or an error; its last output: "
            f"{_tail(output)}"
        )
    failure = worker_pb2.Error.FromString(error)
    if failure.kind == Kind.USER:
        raise TaskCodeError(failure.type_name, failure.message, failure.traceback)
    if failure.kind == Kind.OOM:
        raise _oom(attempt, f"{where} ran out of memory ({failure.type_name}: {failure.message})", peak)
    raised = BackendError(f"{where} could not start: {failure.type_name}: {failure.message}")
    raised.traceback_text = failure.traceback  # type: ignore[attr-defined]
    if failure.type_name in _DETERMINISTIC:
        raised.failure_kind = "user"  # type: ignore[attr-defined]
    raise raised


async def stored_outcome(services: RemoteServices, attempt: AttemptInput, launch: EntryLaunch) -> AttemptResult | None:
    """The end of an attempt as the store has it already (outputs, error or the controller's verdict): its result,
    or its failure raised; None when the store has none (the attempt has not ended, or never started).

    For a resumed attempt whose pod or job is gone: it ended before, and must not run again.
    """
    store = await services.store()
    keys = launch.keys
    missing = set(await store.missing([keys.outputs, keys.error, keys.verdict]))
    if keys.outputs not in missing or keys.error not in missing:
        return await read_attempt(services, attempt, launch, exit_code=None)
    if keys.verdict in missing:
        return None
    try:
        verdict = json.loads(await store.get(keys.verdict))
        kind, message = str(verdict["kind"]), str(verdict["message"])
        retryable = bool(verdict.get("retryable", True))
    except (ValueError, KeyError, TypeError) as e:
        raise BackendError(f"the recorded end of {keys.prefix} cannot be read: {e}") from None
    if kind == "oom":
        raise _oom(attempt, message, None)
    failure: Exception = TimeoutError(message) if kind == "timeout" else BackendError(message)
    failure.failure_kind = kind  # type: ignore[attr-defined]
    if not retryable:
        failure.retryable = False  # type: ignore[attr-defined]
    raise failure


async def record_verdict(services: RemoteServices, launch: EntryLaunch, failure: BaseException) -> None:
    """Keep how an attempt ended without outputs or error (``failure``: the backend's own, or a cancellation),
    before what ran it is removed; nothing when the attempt wrote its own end."""
    store = await services.store()
    keys = launch.keys
    if len(await store.missing([keys.outputs, keys.error])) < 2:
        return
    if isinstance(failure, OutOfMemoryError):
        kind = "oom"
    elif isinstance(failure, Exception):
        kind = getattr(failure, "failure_kind", None) or "system"
    else:
        kind = "system"  # cancelled: whoever takes the run over starts a new attempt
    message = str(failure) if isinstance(failure, Exception) else "the attempt was cancelled by its controller"
    retryable = getattr(failure, "retryable", True)
    data = json.dumps({"kind": kind, "message": message, "retryable": retryable}).encode()
    await store.put(keys.verdict, data)


def _oom(attempt: AttemptInput, message: str, peak: int | None) -> OutOfMemoryError:
    error = OutOfMemoryError(
        message, task=attempt.task.name, action=attempt.action.id, attempt=attempt.attempt, cause_type="MemoryError"
    )
    error.peak_memory = peak or attempt.memory  # type: ignore[attr-defined]
    return error


async def _optional(read: Any) -> bytes | None:
    try:
        data: bytes = await read
    except BlobNotFoundError:
        return None
    return data


def _metrics(data: bytes | None) -> tuple[int | None, float | None]:
    if data is None:
        return None, None
    try:
        values = json.loads(data)
        return int(values["peak_rss"]), float(values["cpu_seconds"])
    except (ValueError, KeyError, TypeError):
        return None, None


def _tail(text: str, lines: int = 5) -> str:
    kept = text.strip().splitlines()[-lines:]
    return " | ".join(kept) if kept else "(nothing)"
