"""The control plane (``flytelike serve``) beside the same work done without it, each measured in the same run.

    python benchmarks/bench_serve.py [--quick] [--only overhead,kubernetes,watch] [--repeat 1]
                                     [--n 200] [--pods 200] [--watchers 50] [--children 2000]

1. Remote-run overhead (design.md §6, target <= 2x): one root task gathering ``--n`` trivial children, every task a
   ``flytelike-entry`` process of :class:`flytelike.testing.SubprocessBackend`. Local: a ``Runtime`` in this process
   with that backend; remote: an in-process ``ControlPlane`` on loopback whose ``[serve] backends`` is that backend,
   the run created and awaited through ``fl.Remote`` (which follows every event over WatchRun until the end). Each
   side times the run from its start to its result, after a first small run has stored the code bundle.
   design.md names a 1,000-way fan-out; each task here is a new Python process (about 140 ms of cpu), so 1,000
   take about three minutes a side on two cores, and the default is 200 (``--n 1000`` for the design's size).
2. The same comparison for ``--pods`` tasks as pods on :class:`flytelike.testing.KubernetesEmulator` (in this
   process; its kubelet runs each pod as a local process), the server's ``[serve] backends`` being ``kubernetes``.
3. WatchRun fan-in: ``--watchers`` concurrent watchers (each its own client connection) of one run whose run
   source reports a ``--children``-way fan-out's events (3 per child) as fast as the server takes them; no code
   runs, so what is measured is the server's writer and its watch streams. Events delivered per second, summed
   over the watchers, beside the same with one watcher; the rate the server wrote them is shown too. The
   watchers run in a process of their own (this script with ``--watch-run``), as clients are elsewhere: on the
   server's event loop they would take the loop's time from the writer they are measuring.

In 1 and 2 the server, its client and the emulator share this process's event loop, as the local run shares it
with the emulator. Each line reads ``name: value  (baseline: value, ratio Nx, target ...)``, then notes follow;
``--quick`` runs every measurement at a few tasks, for the smoke test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import _common
import anyio
from _common import Row
from anyio.streams.buffered import BufferedByteReceiveStream

import flytelike as fl
from flytelike._config import Settings, load_settings
from flytelike._loader import load_file
from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._control import ControlPlane
from flytelike._remote._source import RunReports
from flytelike._runtime import Runtime
from flytelike.testing import SubprocessBackend
from flytelike.testing.kubernetes import KubernetesEmulator

TOKEN = "bench-serve-token"
SUBPROCESS = "subprocess"
SUBPROCESS_BACKEND = f"{SUBPROCESS}=flytelike.testing:SubprocessBackend.from_input"
TARGET_OVERHEAD = 2.0  # design.md §6: a remote run costs at most twice the same run local
EMIT_CHUNK = 100  # events the synthetic source reports per turn of the event loop

TASK_FILE = textwrap.dedent(
    """
    import asyncio

    import flytelike as fl

    env = fl.TaskEnvironment(name="bench-serve")


    @env.task
    async def child(i: int) -> int:
        return i


    @env.task
    async def fan_out(n: int) -> int:
        return len(await asyncio.gather(*(child(i) for i in range(n))))
    """
)


@dataclass(frozen=True)
class Config:
    """What to measure and how big (``--quick`` makes every size small)."""

    n: int = 200
    pods: int = 200
    watchers: int = 50
    children: int = 2000
    repeat: int = 1
    only: tuple[str, ...] = ()


# --- 1 and 2: the same run, local and through the server ----------------------------------------------------------


@dataclass
class _Sides:
    local: list[float] = field(default_factory=list)
    remote: list[float] = field(default_factory=list)


def _project(folder: Path) -> ModuleType:
    """A one-file project holding the fan-out, loaded here (the client bundles it from its file)."""
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text("[project]\nname = 'bench-serve'\n")
    file = folder / "bench_serve_tasks.py"
    file.write_text(TASK_FILE)
    return load_file(file)


async def _local_run(runtime: Runtime, module: ModuleType, n: int) -> float:
    started = time.perf_counter()
    handle = await runtime.start(module.fan_out, n)
    count = await handle.result()
    elapsed = time.perf_counter() - started
    if count != n:
        raise RuntimeError(f"the local run returned {count}, not {n}")
    return elapsed


async def _remote_run(remote: fl.Remote, module: ModuleType, n: int) -> float:
    started = time.perf_counter()
    run = await remote.run(module.fan_out, n=n)
    count = await run.result()
    elapsed = time.perf_counter() - started
    if count != n:
        raise RuntimeError(f"the remote run {run.id} returned {count}, not {n}")
    return elapsed


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[tuple[ControlPlane, fl.Remote]]:
    """A server of ``settings`` on a free loopback port and a client of it with a home of its own."""
    async with AsyncExitStack() as stack:
        plane = await stack.enter_async_context(ControlPlane(settings, bind="127.0.0.1:0", token=TOKEN))
        client_home = settings.home.parent / "client-home"
        remote = fl.Remote(plane.address, token=TOKEN, settings=load_settings(home=client_home))
        await stack.enter_async_context(remote)
        yield plane, remote


async def _both_sides(module: ModuleType, n: int, repeat: int, local: Runtime, server: Settings) -> _Sides:
    """Time the fan-out ``repeat`` times on each side, the sides taking turns so drift hits both alike."""
    sides = _Sides()
    async with _serving(server) as (_, remote):
        # A first small run each side stores the bundle (and starts what starts lazily): timed runs find it there.
        await _local_run(local, module, 2)
        await _remote_run(remote, module, 2)
        for _ in range(repeat):
            sides.local.append(await _local_run(local, module, n))
            sides.remote.append(await _remote_run(remote, module, n))
    return sides


async def _subprocess_sides(config: Config, folder: Path) -> _Sides:
    module = _project(folder / "project")
    local_settings = load_settings(home=folder / "local-home")
    server_settings = load_settings(
        home=folder / "server" / "home", serve={"backends": [SUBPROCESS_BACKEND], "platform": SUBPROCESS}
    )
    # The local run's tasks have no platform, so they go to its "local" backend: the same factory the server has.
    backends = {"local": SubprocessBackend.from_input}
    async with Runtime(settings=local_settings, backends=backends) as local:
        return await _both_sides(module, config.n, config.repeat, local, server_settings)


async def _kubernetes_sides(config: Config, folder: Path) -> _Sides:
    module = _project(folder / "project")
    async with KubernetesEmulator() as cluster:
        kubernetes = {
            "kubeconfig": str(cluster.kubeconfig_path),
            "entrypoint": [sys.executable, "-m", "flytelike.entry"],
        }
        local_settings = load_settings(home=folder / "local-home", kubernetes=kubernetes)
        server_settings = load_settings(
            home=folder / "server" / "home", kubernetes=kubernetes, serve={"backends": ["kubernetes"]}
        )
        async with Runtime(settings=local_settings, platform="kubernetes") as local:
            return await _both_sides(module, config.pods, config.repeat, local, server_settings)


def _overhead_row(name: str, sides: _Sides, repeat: int, note: str) -> Row:
    return Row(
        name,
        min(sides.remote),
        "s",
        min(sides.local),
        "local",
        TARGET_OVERHEAD,
        note=f"{note}; best of {repeat} (local {_seconds(sides.local)}, remote {_seconds(sides.remote)})",
    )


def _seconds(values: Sequence[float]) -> str:
    return " ".join(f"{v:.2f}s" for v in values)


def remote_overhead(config: Config) -> list[Row]:
    """Remote-run overhead: a fan-out of out-of-process children through the server vs the same run local."""
    with tempfile.TemporaryDirectory(prefix="flytelike-bench-serve-") as folder, _common.fresh_home():
        sides = anyio.run(_subprocess_sides, config, Path(folder))
    note = "every task a new flytelike-entry process (subprocess backend) on both sides"
    if config.n < 1000:
        note += f"; N={config.n}, not design.md's 1,000 (about 3 minutes a side on 2 cores): --n 1000 for that"
    return [_overhead_row(f"remote run overhead, {config.n}-way fan-out", sides, config.repeat, note)]


def kubernetes_overhead(config: Config) -> list[Row]:
    """Kubernetes emulator: a fan-out of pods through the server vs the same run local."""
    with tempfile.TemporaryDirectory(prefix="flytelike-bench-serve-") as folder, _common.fresh_home():
        sides = anyio.run(_kubernetes_sides, config, Path(folder))
    note = "every task a pod on the Kubernetes emulator (in this process) on both sides"
    return [_overhead_row(f"remote run on Kubernetes emulator, {config.pods} tasks", sides, config.repeat, note)]


# --- 3: WatchRun fan-in ------------------------------------------------------------------------------------------


class SyntheticSource:
    """A run source that runs nothing: each run, once released, reports a fan-out's events as fast as it can.

    For a fan-out of ``children``: the root queued and running, each child queued, running and succeeded, the root
    succeeded, then the run's end: ``3 * children + 3`` action events and the run's own.
    """

    def __init__(self, children: int) -> None:
        self.children = children
        self._reports: dict[str, RunReports] = {}

    async def start(self, run_id: str, request: runs_pb2.CreateRunRequest, reports: RunReports) -> None:
        self._reports[run_id] = reports
        reports.running(run_id)

    async def abort(self, run_id: str, action_id: str, reason: str) -> str:
        reports = self._reports.pop(run_id, None)
        if reports is None:
            return "not running here"
        reports.finished(run_id, "aborted", error=reason)
        return "cancelled"

    @property
    def events(self) -> int:
        """Action events each run reports."""
        return 3 * self.children + 3

    async def emit(self, run_id: str) -> None:
        """Report the run's events and its end, ``EMIT_CHUNK`` a turn of the loop (as a busy run reports them)."""
        reports = self._reports.pop(run_id)
        transitions = [("0", "queued"), ("0", "running")]
        for state in ("queued", "running", "succeeded"):
            transitions.extend((f"0.{i}", state) for i in range(self.children))
        transitions.append(("0", "succeeded"))
        for seq, (action, state) in enumerate(transitions, start=1):
            reports.event(
                runs_pb2.Event(
                    run_id=run_id,
                    seq=seq,
                    action_id=action,
                    parent="" if action == "0" else "0",
                    task="bench-serve.child@v" if action != "0" else "bench-serve.fan_out@v",
                    state=state,
                    attempt=1,
                    time=time.time(),
                )
            )
            if seq % EMIT_CHUNK == 0:
                await anyio.sleep(0)
        reports.finished(run_id, "succeeded", outputs=b"")


@dataclass
class _Watched:
    events: int  # action events delivered, summed over the watchers
    delivered: float  # seconds from the first report to the last watcher's end
    written: float  # seconds from the first report until the server had recorded everything


async def _watch(remote: fl.Remote, run_id: str, synced: Callable[[], None]) -> int:
    """Follow the run to its end through the client; the action events seen after the ``synced`` marker."""
    seen = 0
    live = False
    async for item in remote.client.watch(run_id):
        if item.WhichOneof("item") == "synced":
            live = True
            synced()
        elif live and item.event.action_id:
            seen += 1
    return seen


async def _watch_all(address: str, run_id: str, watchers: int, all_synced: Callable[[], None]) -> list[int]:
    """``watchers`` clients (each its own connection) following one run to its end; the events each saw live.

    ``all_synced`` is called once every watcher has read the run's past and waits for what comes next.
    """
    counts: list[int] = []
    waiting = [watchers]

    def synced() -> None:
        waiting[0] -= 1
        if waiting[0] == 0:
            all_synced()

    async def watcher(remote: fl.Remote) -> None:
        counts.append(await _watch(remote, run_id, synced))

    async with AsyncExitStack() as stack:
        settings = load_settings()
        clients = [
            await stack.enter_async_context(fl.Remote(address, token=TOKEN, settings=settings)) for _ in range(watchers)
        ]
        async with anyio.create_task_group() as tg:
            for remote in clients:
                tg.start_soon(watcher, remote)
    return counts


async def _watch_apart(plane: ControlPlane, source: SyntheticSource, run_id: str, watchers: int) -> _Watched:
    """The watchers in a process of their own (this script with ``--watch-run``), as clients are elsewhere."""
    command = [sys.executable, __file__, "--watch-run", plane.address, run_id, str(watchers)]
    env = _common.process_env(plane.settings.home.parent / "watcher-home")
    with tempfile.TemporaryFile() as stderr:
        async with await anyio.open_process(command, env=env, stderr=stderr) as process:
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            try:
                with anyio.fail_after(120):
                    said = await lines.receive_until(b"\n", 1 << 20)
                    if said != b"synced":
                        raise RuntimeError(f"the watcher process said {said!r}, not b'synced'")
                    started = time.time()
                    await source.emit(run_id)
                    await plane.settled()
                    written = time.time()
                    report = json.loads(await lines.receive_until(b"\n", 1 << 24))
                    await process.wait()
            except (anyio.EndOfStream, anyio.IncompleteRead, TimeoutError) as e:
                process.kill()
                stderr.seek(0)
                tail = " ".join(stderr.read().decode(errors="replace").strip().splitlines()[-3:])
                raise RuntimeError(f"the watcher process failed ({type(e).__name__}): {tail}") from None
    counts: list[int] = report["counts"]
    if counts != [source.events] * watchers:
        raise RuntimeError(f"the watchers saw {sorted(set(counts))} events each, not {source.events}")
    return _Watched(sum(counts), report["ended"] - started, written - started)


async def _fan_in_both(config: Config, folder: Path) -> tuple[_Watched, _Watched]:
    module = _project(folder / "project")
    source = SyntheticSource(config.children)
    settings = load_settings(home=folder / "server" / "home")
    results: list[_Watched] = []
    async with (
        ControlPlane(settings, source=source, bind="127.0.0.1:0", token=TOKEN) as plane,
        fl.Remote(plane.address, token=TOKEN, settings=load_settings(home=folder / "client-home")) as remote,
    ):
        for watchers in (1, config.watchers):
            run = await remote.run(module.fan_out, n=source.children)
            await plane.settled()
            results.append(await _watch_apart(plane, source, run.id, watchers))
    return results[0], results[1]


def watch_fan_in(config: Config) -> list[Row]:
    """WatchRun fan-in: events per second delivered to many watchers of one run vs one watcher."""
    with tempfile.TemporaryDirectory(prefix="flytelike-bench-serve-") as folder, _common.fresh_home():
        one, many = anyio.run(_fan_in_both, config, Path(folder))
    events = config.children * 3 + 3
    return [
        Row(
            f"WatchRun fan-in, {config.watchers} watchers of a {config.children}-way fan-out",
            many.events / many.delivered,
            "events/s",
            one.events / one.delivered,
            "1 watcher",
            note=(
                f"watchers in a process of their own; {events} events a run, written at "
                f"{events / many.written:.0f} events/s with {config.watchers} watchers, "
                f"{events / one.written:.0f} events/s with 1; a ratio of {config.watchers}x would be every watcher "
                "as fast as one alone"
            ),
        )
    ]


def _watch_run_main(address: str, run_id: str, watchers: int) -> None:
    """``--watch-run``: the watchers of :func:`_watch_apart`; says ``synced``, then the counts and the end time."""

    def synced() -> None:
        print("synced", flush=True)

    counts = anyio.run(_watch_all, address, run_id, watchers, synced)
    print(json.dumps({"counts": counts, "ended": time.time()}), flush=True)


# --- the script ----------------------------------------------------------------------------------------------------


def _measure(title: str, fn: Callable[[Config], list[Row]], config: Config) -> Callable[[], list[Row]]:
    def measure() -> list[Row]:
        return fn(config)

    measure.__doc__ = title
    return measure


MEASUREMENTS: dict[str, Callable[[Config], list[Row]]] = {
    "overhead": remote_overhead,
    "kubernetes": kubernetes_overhead,
    "watch": watch_fan_in,
}


def measures(config: Config) -> list[Callable[[], list[Row]]]:
    """The measurements of ``config`` (all three unless ``only``), each a zero-argument callable as
    ``_common.run_rows`` takes them."""
    chosen = [fn for name, fn in MEASUREMENTS.items() if not config.only or name in config.only]
    return [_measure(fn.__doc__ or fn.__name__, fn, config) for fn in chosen]


def line(row: Row) -> str:
    """``name: value  (baseline: value, ratio Nx, target ...)``, or ``name: ERROR message``."""
    if row.error or row.measured is None:
        return f"{row.name}: ERROR {row.error}"
    measured = f"{_common._num(row.measured)} {row.unit}"
    baseline = f"{row.baseline_label} {_common._num(row.baseline)} {row.unit}".strip() if row.baseline else "-"
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    target = row.target_text if row.target is None else f"{row.target_text}, {row.status}"
    return f"{row.name}: {measured}  (baseline: {baseline}, ratio {ratio}, target {target})"


def parse(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test (overrides the others)")
    parser.add_argument("--n", type=_positive, default=Config.n, help="children of the remote-overhead fan-out")
    parser.add_argument("--pods", type=_positive, default=Config.pods, help="tasks on the Kubernetes emulator")
    parser.add_argument("--watchers", type=_positive, default=Config.watchers, help="concurrent watchers")
    parser.add_argument("--children", type=_positive, default=Config.children, help="children of the watched run")
    parser.add_argument("--repeat", type=_positive, default=Config.repeat, help="timed runs a side (best counts)")
    parser.add_argument("--only", type=_names, default=(), help=f"a comma-separated subset of {','.join(MEASUREMENTS)}")
    args = parser.parse_args(argv)
    if args.quick:
        return Config(n=4, pods=3, watchers=5, children=50, repeat=1, only=args.only)
    return Config(args.n, args.pods, args.watchers, args.children, args.repeat, args.only)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in MEASUREMENTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r} names unknown measurements {unknown}; accepted: a comma-separated subset of "
            f"{','.join(MEASUREMENTS)} (e.g. overhead,watch)"
        )
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number (e.g. 200)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["--watch-run"] and len(args) == 4:
        _watch_run_main(args[1], args[2], int(args[3]))
        return 0
    config = parse(args)
    _common.print_header()
    rows = _common.run_rows(measures(config))
    for row in rows:
        print(line(row))
    notes = [row for row in rows if row.note]
    if notes:
        print()
        for row in notes:
            print(f"- {row.name}: {row.note}")
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
