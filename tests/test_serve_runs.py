"""RunService on an in-process server with a real gRPC client; runs come from a fake source the tests drive."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import pytest
from serve_support import (
    DATABASES,
    TOKEN,
    FakeRunSource,
    bundle_bytes,
    create_request,
    fresh_database,
    serving,
    upload_bundle,
)

from flytelike._config import load_settings
from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._control import ControlPlane
from flytelike._remote._run_client import RunClient
from flytelike._remote._state import ServerState
from flytelike.errors import BackendError, ConfigError, RecordWriteError


@pytest.fixture(scope="module")
def bundle() -> tuple[str, bytes]:
    return bundle_bytes()


@pytest.fixture(params=DATABASES)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test on SQLite, and on PostgreSQL when one is reachable."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


async def test_create_run_twice_with_one_request_id_makes_one_run(
    tmp_path: Path, bundle: tuple[str, bytes], database: str
) -> None:
    source = FakeRunSource()
    async with (
        serving(tmp_path / "srv", source, database=database) as plane,
        RunClient(plane.address, token=TOKEN) as client,
    ):
        await upload_bundle(client, *bundle, tmp_path)
        request = create_request(bundle[0], request_id=str(uuid.uuid4()))
        first, second = await client.create_run(request), await client.create_run(request)
        assert first.created
        assert not second.created
        assert first.run.id == second.run.id
        assert first.run_token == second.run_token
        assert source.started == [first.run.id]
        assert [r.id for r in await client.list_runs()] == [first.run.id]


async def test_concurrent_create_runs_with_one_request_id_start_one_run(
    tmp_path: Path, bundle: tuple[str, bytes], database: str
) -> None:
    source = FakeRunSource()
    async with (
        serving(tmp_path / "srv", source, database=database) as plane,
        RunClient(plane.address, token=TOKEN) as client,
    ):
        await upload_bundle(client, *bundle, tmp_path)
        request = create_request(bundle[0], request_id="same")
        ids: list[str] = []

        async def create() -> None:
            ids.append((await client.create_run(request)).run.id)

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(create)
        assert len(set(ids)) == 1
        assert source.started == ids[:1]


async def test_a_run_without_its_bundle_is_refused(tmp_path: Path, bundle: tuple[str, bytes], database: str) -> None:
    async with (
        serving(tmp_path / "srv", FakeRunSource(), database=database) as plane,
        RunClient(plane.address, token=TOKEN) as client,
    ):
        with pytest.raises(BackendError, match=r"FAILED_PRECONDITION.*upload it first"):
            await client.create_run(create_request(bundle[0], request_id="x"))


async def test_watch_cut_and_resumed_with_its_cursor_misses_and_repeats_nothing(
    tmp_path: Path, bundle: tuple[str, bytes], database: str
) -> None:
    source = FakeRunSource()
    async with (
        serving(tmp_path / "srv", source, database=database) as plane,
        RunClient(plane.address, token=TOKEN) as client,
    ):
        await upload_bundle(client, *bundle, tmp_path)
        run = (await client.create_run(create_request(bundle[0], request_id="w"))).run
        for state in ("queued", "running"):
            source.emit(run.id, "0", state)
        for i in range(5):
            source.emit(run.id, f"0.{i}", "queued")
        await plane.settled()
        seen: list[int] = []
        kinds: list[str] = []
        async for item in client.watch(run.id):
            kinds.append(item.WhichOneof("item"))
            if item.WhichOneof("item") == "event":
                seen.append(item.event.seq)
                if len(seen) == 4:
                    break  # the watch is cut in the middle of the replay
        cursor = seen[-1]
        for i in range(5):
            source.emit(run.id, f"0.{i}", "succeeded")
        source.emit(run.id, "0", "succeeded")
        source.finish(run.id, "succeeded", outputs=b"")
        resumed: list[int] = []
        async for item in client.watch(run.id, after_seq=cursor):
            if item.WhichOneof("item") == "event":
                resumed.append(item.event.seq)
        everything = seen + resumed
        run_now = await client.get_run(run.id)
        # The run's events are 1..last (the run's "running" and "succeeded" among them): each exactly once.
        assert everything == list(range(1, run_now.last_seq + 1))
        assert run_now.state == "succeeded"
        actions = await client.actions(run.id)
        assert [a.id for a in actions] == ["0", "0.0", "0.1", "0.2", "0.3", "0.4"]
        assert {a.state for a in actions} == {"succeeded"}


async def test_a_watch_replays_then_says_synced_then_streams_live_events(
    tmp_path: Path, bundle: tuple[str, bytes], database: str
) -> None:
    source = FakeRunSource()
    async with (
        serving(tmp_path / "srv", source, database=database) as plane,
        RunClient(plane.address, token=TOKEN) as client,
    ):
        await upload_bundle(client, *bundle, tmp_path)
        run = (await client.create_run(create_request(bundle[0], request_id="live"))).run
        source.emit(run.id, "0", "queued")
        await plane.settled()
        items: list[tuple[str, str]] = []
        async for item in client.watch(run.id):
            kind = item.WhichOneof("item")
            items.append((kind, item.event.state if kind == "event" else ""))
            if kind == "synced":
                source.emit(run.id, "0", "running")
                source.emit(run.id, "0", "failed")
                source.finish(run.id, "failed", error="boom")
        synced = items.index(("synced", ""))
        assert ("event", "queued") in items[:synced]
        assert items[synced + 1 :] == [("event", "running"), ("event", "failed"), ("event", "failed")]
        with pytest.raises(BackendError, match=r"FAILED_PRECONDITION.*failed: boom"):
            await client.outputs(run.id)


async def test_outputs_logs_and_filters(tmp_path: Path, bundle: tuple[str, bytes], database: str) -> None:
    source = FakeRunSource()
    async with (
        serving(tmp_path / "srv", source, database=database) as plane,
        RunClient(plane.address, token=TOKEN) as client,
    ):
        await upload_bundle(client, *bundle, tmp_path)
        a = (await client.create_run(create_request(bundle[0], request_id="a", labels={"team": "ml"}))).run
        b = (await client.create_run(create_request(bundle[0], request_id="b"))).run
        source.emit(a.id, "0", "running")
        source.logs(a.id, "0", 0, b"hello ")
        chunks: list[bytes] = []

        async def follow() -> None:
            async for chunk in client.tail_logs(a.id, "0", follow=True):
                chunks.append(chunk.data)
                if chunk.offset == 0:
                    source.logs(a.id, "0", 6, b"world\n")
                    source.emit(a.id, "0", "succeeded")
                    source.finish(a.id, "succeeded", outputs=b"\x01\x02")

        with anyio.fail_after(5):
            await follow()
        assert b"".join(chunks) == b"hello world\n"
        assert (await client.outputs(a.id)).outputs == b"\x01\x02"
        assert [r.id for r in await client.list_runs(labels={"team": "ml"})] == [a.id]
        assert [r.id for r in await client.list_runs(states=("running",))] == [b.id]
        assert [r.id for r in await client.list_runs(limit=1)] == [b.id]
        assert {r.id for r in await client.list_runs(limit=5)} == {a.id, b.id}
        assert b"".join([c.data async for c in client.tail_logs(a.id, "0", after_offset=6)]) == b"world\n"


async def test_abort_is_recorded_then_carried_out(tmp_path: Path, bundle: tuple[str, bytes], database: str) -> None:
    source = FakeRunSource()
    async with (
        serving(tmp_path / "srv", source, database=database) as plane,
        RunClient(plane.address, token=TOKEN) as client,
    ):
        await upload_bundle(client, *bundle, tmp_path)
        run = (await client.create_run(create_request(bundle[0], request_id="ab"))).run
        assert await client.abort(run.id, reason="stop")
        with anyio.fail_after(5):
            async for _ in client.watch(run.id):
                pass
        assert source.aborted == [(run.id, "")]
        assert (await client.get_run(run.id)).state == "aborted"
        assert not await client.abort(run.id)  # ended: nothing to abort


@pytest.mark.slow
async def test_fifty_clients_create_and_watch_runs_at_once(
    tmp_path: Path, bundle: tuple[str, bytes], database: str
) -> None:
    source = FakeRunSource()
    async with serving(tmp_path / "srv", source, database=database) as plane:
        async with RunClient(plane.address, token=TOKEN) as setup:
            await upload_bundle(setup, *bundle, tmp_path)
        counts: dict[str, int] = {}

        async def one(i: int) -> None:
            async with RunClient(plane.address, token=TOKEN) as client:
                run = (await client.create_run(create_request(bundle[0], request_id=f"c{i}"))).run
                source.emit(run.id, "0", "running")
                source.emit(run.id, "0", "succeeded")
                source.finish(run.id, "succeeded", outputs=b"")
                seqs = [x.event.seq async for x in client.watch(run.id) if x.WhichOneof("item") == "event"]
                assert seqs == list(range(1, len(seqs) + 1))
                counts[run.id] = len(seqs)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(one, i)
        assert len(counts) == 50
        assert set(counts.values()) == {4}  # running (run), running, succeeded (action), succeeded (run)


async def test_a_failed_write_is_retried_and_nothing_is_lost_or_doubled(
    tmp_path: Path, bundle: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = FakeRunSource()
    real = ServerState.append_events
    failures = [RecordWriteError("database is locked", path="db", cause="database is locked")]

    async def flaky(self: ServerState, run_id: str, batch: Sequence[runs_pb2.Event]) -> list[runs_pb2.Event]:
        stored = await real(self, run_id, batch)
        if failures:
            raise failures.pop()  # after the commit: the retry writes the same events again
        return stored

    monkeypatch.setattr(ServerState, "append_events", flaky)
    async with serving(tmp_path / "srv", source) as plane, RunClient(plane.address, token=TOKEN) as client:
        await upload_bundle(client, *bundle, tmp_path)
        run = (await client.create_run(create_request(bundle[0], request_id="flaky"))).run
        source.emit(run.id, "0", "running")
        source.emit(run.id, "0", "succeeded")
        source.finish(run.id, "succeeded", outputs=b"")
        with anyio.fail_after(10):
            events = [(x.event.action_id, x.event.state) async for x in client.watch(run.id) if x.event.state]
        assert not failures
        assert events == [("", "running"), ("0", "running"), ("0", "succeeded"), ("", "succeeded")]


async def test_a_server_that_fails_to_start_leaves_its_port_free(tmp_path: Path) -> None:
    # The port is taken before the run source is made; a source that cannot be made must not keep it.
    settings = load_settings(home=tmp_path, serve={"backends": ["broken=no_such_module:factory"]})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"serve.backends.*cannot be loaded"):
            async with ControlPlane(settings, bind=f"127.0.0.1:{port}", token="t"):
                pass
    async with ControlPlane(settings, source=FakeRunSource(), bind=f"127.0.0.1:{port}", token="t") as plane:
        assert plane.address == f"127.0.0.1:{port}"
