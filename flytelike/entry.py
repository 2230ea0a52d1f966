"""``flytelike-entry``: what a pod, a Batch job or any other process outside the controller runs for one attempt.

::

    flytelike-entry --run R --action A --attempt N --bundle URI#sha256=HEX --inputs URI --output-prefix URI
                    --task MODULE:QUALNAME --template URI [--controller HOST:PORT] [--platform NAME]

Steps: reach the controller (when ``--controller`` is given; the run's token is ``FLYTELIKE_CONTROLLER__TOKEN``),
fetch the code bundle and verify it against its digest (kept under ``$FLYTELIKE_HOME/bundles/<hex>``, so a second
attempt on the same machine downloads nothing), import the task's module from it, check that the template's
version is the code's, read the inputs (files and directories they reference come from the store under their own
names), execute the task, and write under ``--output-prefix``: ``metrics.json`` always (peak RSS, cpu and wall
seconds), ``logs`` (the attempt's output), and ``outputs.pb`` last, or ``error.pb`` (kind, type, message,
traceback).

Exit status: 0 = outputs written; 10 = the task failed (``error.pb`` says how); 11 = bootstrap error (arguments,
controller, bundle, template, import, inputs; ``error.pb`` is written when the store can be reached). Whoever
launched the attempt treats it as a success only when ``outputs.pb`` exists, never by the exit status alone.

Only what an attempt needs is imported: grpc for ``--controller``, aioboto3 for an ``s3://`` store, never the
Kubernetes client.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import anyio

from flytelike._bundle import extract_bundle
from flytelike._config import Settings, load_settings, pem_setting
from flytelike._entry import RefChannel
from flytelike._proto.core.v1 import tasks_pb2
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._storage._blobs import BlobStore, bundle_key, open_store
from flytelike._storage._refs import download_refs, upload_refs
from flytelike._worker import _frames
from flytelike._worker._children import ChildChannel, Children, Deliver, Where
from flytelike._worker._execute import ExecuteCache, ExecuteInput, execute
from flytelike.errors import FlytelikeError, LoadError

if TYPE_CHECKING:
    from flytelike._remote import ActionClient

__all__ = ["EXIT_BOOTSTRAP", "EXIT_OK", "EXIT_TASK", "EntryArgs", "main", "parse_args", "run"]

EXIT_OK = 0
EXIT_TASK = 10
EXIT_BOOTSTRAP = 11

Kind = worker_pb2.Error.Kind
_MARKERS = {"bundle": "/bundles/sha256/", "template": "/data/sha256/"}


class BootstrapError(FlytelikeError):
    """The attempt could not start: bad arguments, the controller, the bundle, the template or the inputs."""


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        # argparse exits 2; a bootstrap failure is 11, and the message says which argument is wrong.
        raise _ArgumentError(message)


@dataclass(frozen=True, slots=True)
class EntryArgs:
    """The entrypoint's arguments (see the module's docstring)."""

    run: str
    action: str
    attempt: int
    bundle: str
    bundle_digest: str
    inputs: str
    output_prefix: str
    module: str
    task: str
    template: str
    controller: str | None = None
    platform: str = ""


def parse_args(argv: Sequence[str]) -> EntryArgs:
    """Parse and check the arguments; :class:`BootstrapError` names the one that is wrong."""
    parser = _Parser(prog="flytelike-entry", description="Run one attempt of a flytelike task.", add_help=False)
    for name in ("--run", "--action", "--bundle", "--inputs", "--output-prefix", "--task", "--template"):
        parser.add_argument(name, required=True)
    parser.add_argument("--attempt", required=True, type=int)
    parser.add_argument("--controller")
    parser.add_argument("--platform", default="")
    try:
        ns = parser.parse_args(list(argv))
    except _ArgumentError as e:
        raise BootstrapError(f"flytelike-entry: {e}") from None
    bundle, sep, digest = ns.bundle.partition("#sha256=")
    if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise BootstrapError(
            f"flytelike-entry: --bundle {ns.bundle!r} names no digest; accepted: URI#sha256=<64 lowercase hex>"
        )
    module, sep, qualname = ns.task.partition(":")
    if not sep or not module or not qualname:
        raise BootstrapError(f"flytelike-entry: --task {ns.task!r} is not MODULE:QUALNAME, e.g. 'pkg.tasks:env.main'")
    if ns.attempt < 1:
        raise BootstrapError(f"flytelike-entry: --attempt {ns.attempt} is not a whole number >= 1")
    return EntryArgs(
        run=ns.run,
        action=ns.action,
        attempt=ns.attempt,
        bundle=bundle,
        bundle_digest=digest,
        inputs=ns.inputs,
        output_prefix=ns.output_prefix.rstrip("/"),
        module=module,
        task=qualname,
        template=ns.template,
        controller=ns.controller or None,
        platform=ns.platform,
    )


def _split(uri: str, marker: str, what: str) -> tuple[str, str]:
    """A store URL and the key in it: ``file:///s/runs/r/a/1`` at ``/runs/`` -> (``file:///s``, ``runs/r/a/1``)."""
    at = uri.rfind(marker)
    if at <= 0:
        raise BootstrapError(f"flytelike-entry: {what} {uri!r} is not a URL in a flytelike store (no {marker!r})")
    return uri[:at], uri[at + 1 :]


class _Tee(io.TextIOBase):
    """The task's stdout or stderr: written through, and kept (for the ``logs`` object and the controller)."""

    def __init__(self, through: TextIO, sink: _Output) -> None:
        self._through = through
        self._sink = sink

    def write(self, text: str) -> int:
        self._through.write(text)
        self._sink.write(text)
        return len(text)

    def flush(self) -> None:
        self._through.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._through.encoding


class _Output:
    """The attempt's output: spooled to a file (never held whole in memory) and streamed to the controller."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.client: ActionClient | None = None

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        self.file.write(data)
        if self.client is not None:
            self.client.write_logs(data)


class _NoController:
    """The calls channel of an attempt started without ``--controller``: its launcher found no task its code calls."""

    def __init__(self, action: str) -> None:
        self._action = action

    def submit(self, message: worker_pb2.SubmitChild, deliver: Deliver) -> None:
        error = worker_pb2.Error(
            kind=Kind.SYSTEM,
            type_name="flytelike.errors.BackendError",
            message=(
                f"task {message.task} was called by action {self._action}, which was started without a controller "
                "address (its code was not seen to call tasks); call tasks by name from the task's module"
            ),
        )
        deliver(worker_pb2.ChildResult(call=message.call, error=error))

    def cancel(self, call: int) -> None:
        pass

    def abandon(self, reason: str) -> None:
        pass


@dataclass(slots=True)
class _Attempt:
    args: EntryArgs
    settings: Settings
    store: BlobStore
    prefix: str
    output: _Output
    client: ActionClient | None = None


def _usage() -> dict[str, float]:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu": me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime,
        # ru_maxrss is in KiB on Linux
        "peak": max(me.ru_maxrss, children.ru_maxrss) * 1024.0,
    }


async def _connect(attempt: _Attempt) -> None:
    args = attempt.args
    if args.controller is None:
        return
    # Imported here: grpc costs a tenth of a second, and an attempt that talks to no controller never pays it.
    from flytelike._remote import ActionClient

    attempt.client = await anyio.to_thread.run_sync(
        lambda: ActionClient.connect(
            args.controller or "",
            token=attempt.settings.controller.token,
            run_id=args.run,
            action_id=args.action,
            attempt=args.attempt,
            reconnect_timeout=attempt.settings.controller.reconnect_timeout,
            startup_wait=attempt.settings.controller.startup_wait,
            tls_ca=pem_setting(attempt.settings.controller.tls_ca, setting="controller.tls_ca"),
        )
    )
    attempt.output.client = attempt.client


async def _bundle_dir(attempt: _Attempt) -> Path:
    args = attempt.args
    root, key = _split(args.bundle, _MARKERS["bundle"], "--bundle")
    if key != bundle_key(args.bundle_digest):
        raise BootstrapError(
            f"flytelike-entry: --bundle {args.bundle!r} is not the bundle sha256:{args.bundle_digest} "
            f"(its key would be {bundle_key(args.bundle_digest)})"
        )
    if root != _root_of(attempt):
        raise BootstrapError(
            f"flytelike-entry: --bundle {args.bundle!r} is not in the attempt's store {_root_of(attempt)}"
        )
    target = attempt.settings.home / "bundles" / args.bundle_digest
    if target.is_dir():
        return target
    downloads = attempt.settings.home / "bundles" / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=downloads, suffix=".tar.gz") as tmp:
        await attempt.store.get_file(key, tmp.name)
        # FileExistsError: another attempt on this machine extracted it meanwhile (the same digest, the same files).
        with contextlib.suppress(FileExistsError):
            await anyio.to_thread.run_sync(
                lambda: extract_bundle(tmp.name, target, digest=f"sha256:{args.bundle_digest}")
            )
    return target


def _root_of(attempt: _Attempt) -> str:
    return _split(attempt.args.output_prefix, f"/runs/{attempt.args.run}/", "--output-prefix")[0]


async def _read(attempt: _Attempt, uri: str, what: str) -> bytes:
    root = _root_of(attempt)
    if not uri.startswith(root + "/"):
        raise BootstrapError(f"flytelike-entry: {what} {uri!r} is not in the attempt's store {root}")
    return await attempt.store.get(uri[len(root) + 1 :])


def _code_file(bundle: Path, module: str) -> str:
    parts = module.split(".")
    candidates = [bundle.joinpath(*parts).with_suffix(".py"), bundle.joinpath(*parts, "__init__.py")]
    for file in candidates:
        if file.is_file():
            return str(file)
    raise LoadError(f"module {module} is not in the code bundle (looked for {', '.join(map(str, candidates))})")


async def _write(attempt: _Attempt, name: str, data: bytes) -> None:
    await attempt.store.put(f"{attempt.prefix}/{name}", data)


async def _finish(attempt: _Attempt, started: float) -> None:
    usage = _usage()
    metrics = {"peak_rss": int(usage["peak"]), "cpu_seconds": usage["cpu"], "wall_seconds": time.monotonic() - started}
    await _write(attempt, "metrics.json", json.dumps(metrics, sort_keys=True).encode())
    output = attempt.output.file
    if output.tell():
        output.flush()
        output.seek(0)
        await _write(attempt, "logs", output.read())


async def _fail(attempt: _Attempt, error: worker_pb2.Error, started: float) -> None:
    await _finish(attempt, started)
    await _write(attempt, "error.pb", error.SerializeToString(deterministic=True))


async def _attempt(args: EntryArgs, settings: Settings, output: _Output) -> int:
    started = time.monotonic()
    root, prefix = _split(args.output_prefix, f"/runs/{args.run}/", "--output-prefix")
    store = open_store(root, endpoint_url=settings.store.endpoint_url, setting="--output-prefix")
    async with store:
        attempt = _Attempt(args, settings, store, prefix, output)
        try:
            await _connect(attempt)
            bundle = await _bundle_dir(attempt)
            sys.path.insert(0, str(bundle))
            template = tasks_pb2.TaskTemplate.FromString(await _read(attempt, args.template, "--template"))
            if template.id.name != args.task:
                raise BootstrapError(f"flytelike-entry: --task names {args.task}, the template {template.id.name}")
            inputs = await _read(attempt, args.inputs, "--inputs")
            inputs = await download_refs(inputs, store, Path.cwd() / "inputs")
            code_file = _code_file(bundle, args.module)
        except Exception as e:
            await _fail(attempt, _frames.error(Kind.SETUP, e), started)
            print(f"flytelike-entry: {type(e).__name__}: {e}", file=sys.__stderr__)
            return EXIT_BOOTSTRAP
        try:
            where = Where(args.run, args.action, args.attempt, args.task, args.platform)
            channel: ChildChannel = _NoController(args.action)
            if attempt.client is not None:
                channel = RefChannel(attempt.client, root, settings.store.endpoint_url, Path.cwd() / "data")
            # Always a submitter, so fl.ctx() works in every attempt; without a controller it refuses calls.
            submitter = Children(channel, args.action, where=where)
            result = await execute(
                ExecuteInput(template, inputs, code_file=code_file, submitter=submitter, cache=ExecuteCache())
            )
            submitter.close()
            if result.outputs is not None:
                outputs = await upload_refs(result.outputs, store)
                await _finish(attempt, started)
                await _write(attempt, "outputs.pb", outputs)  # last: its presence means success
                return EXIT_OK
            assert result.error is not None
            await _fail(attempt, result.error, started)
            return EXIT_BOOTSTRAP if result.error.kind == Kind.SETUP else EXIT_TASK
        finally:
            if attempt.client is not None:
                client = attempt.client
                await anyio.to_thread.run_sync(client.close)


def run(argv: Sequence[str]) -> int:
    """Run one attempt; the exit status (see the module's docstring)."""
    try:
        args = parse_args(argv)
        settings = load_settings()
    except FlytelikeError as e:
        print(e, file=sys.stderr)
        return EXIT_BOOTSTRAP
    with tempfile.TemporaryFile() as spool:
        return _with_output(args, settings, _Output(spool))


def _with_output(args: EntryArgs, settings: Settings, output: _Output) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    # This process runs one attempt and nothing else, so its standard streams are the attempt's own.
    sys.stdout, sys.stderr = _Tee(stdout, output), _Tee(stderr, output)
    try:
        return anyio.run(_attempt, args, settings, output)
    except Exception as e:  # the store itself failed: nothing can be recorded there
        print(f"flytelike-entry: {type(e).__name__}: {e}", file=stderr)
        return EXIT_BOOTSTRAP
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        stdout.flush()
        stderr.flush()


def main() -> None:
    """The ``flytelike-entry`` console script."""
    code = run(sys.argv[1:])
    # Threads a task left running (or grpc's) must not keep a finished attempt's process alive.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
