"""Helpers of the control plane tests: an in-process server on a free port, and a fake run source.

``FakeRunSource`` runs no code at all: a test drives it, saying which events each run reports and how it ends.
It stands in for the runtime where the test is about the server (records, watches, auth, blobs); the end-to-end
tests use the real runtime.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from flytelike._config import load_settings
from flytelike._proto.core.v1 import tasks_pb2
from flytelike._proto.remote.v1 import blobs_pb2, runs_pb2
from flytelike._remote._control import ControlPlane
from flytelike._remote._run_client import RunClient
from flytelike._remote._source import RunReports

TOKEN = "server-token-for-tests"

# Read at import, before the fixtures clear FLYTELIKE_* variables: a PostgreSQL server the storage tests may create
# databases on, e.g. postgresql://flytelike@127.0.0.1:55432/postgres.
POSTGRES = os.environ.get("FLYTELIKE_TEST_POSTGRES", "")
DATABASES = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES, reason="no PostgreSQL: set FLYTELIKE_TEST_POSTGRES=postgresql://user@host:port/postgres"
        ),
    ),
]


@asynccontextmanager
async def fresh_database(kind: str, home: Path) -> AsyncIterator[str]:
    """The ``[serve] database`` of a new, empty database of ``kind``, dropped afterwards (PostgreSQL)."""
    if kind == "sqlite":
        yield str(home / "server.sqlite3")
        return
    import asyncpg

    name = f"flytelike_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES.replace("postgresql://", "postgres://", 1))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield POSTGRES.rsplit("/", 1)[0] + "/" + name
        finally:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


class FakeRunSource:
    """A run source that runs nothing: tests report events and ends through it."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.aborted: list[tuple[str, str]] = []
        self._reports: RunReports | None = None
        self._seq: dict[str, int] = defaultdict(int)

    async def start(self, run_id: str, request: runs_pb2.CreateRunRequest, reports: RunReports) -> None:
        self.started.append(run_id)
        self._reports = reports
        reports.running(run_id)

    def emit(self, run_id: str, action: str, state: str, *, attempt: int = 1, task: str = "fake.task") -> int:
        assert self._reports is not None
        self._seq[run_id] += 1
        seq = self._seq[run_id]
        parent = action.rpartition(".")[0] if "." in action else ""
        self._reports.event(
            runs_pb2.Event(
                run_id=run_id,
                seq=seq,
                action_id=action,
                parent=parent,
                task=task,
                state=state,
                attempt=attempt,
                time=time.time(),
            )
        )
        return seq

    def logs(self, run_id: str, action: str, offset: int, data: bytes, *, attempt: int = 1) -> None:
        assert self._reports is not None
        self._reports.logs(run_id, action, attempt, offset, data)

    def finish(self, run_id: str, state: str, *, outputs: bytes | None = None, error: str = "") -> None:
        assert self._reports is not None
        self._reports.finished(run_id, state, outputs=outputs, error=error)

    async def abort(self, run_id: str, action_id: str, reason: str) -> str:
        self.aborted.append((run_id, action_id))
        if not action_id:
            self.finish(run_id, "aborted", error=reason)
        return "cancelled"


def bundle_bytes() -> tuple[str, bytes]:
    """A real bundle archive of a one-file project (digest, bytes)."""
    import io
    import tempfile

    from flytelike._bundle import build_bundle

    with tempfile.TemporaryDirectory() as d:
        Path(d, "pyproject.toml").write_text("[project]\nname = 'fake'\n")
        Path(d, "fake.py").write_text("X = 1\n")
        bundle = build_bundle(Path(d, "fake.py"))
        out = io.BytesIO()
        bundle.write(out)
        return bundle.digest, out.getvalue()


def create_request(digest: str, *, request_id: str, labels: dict[str, str] | None = None) -> runs_pb2.CreateRunRequest:
    template = tasks_pb2.TaskTemplate()
    template.id.name = "fake.task"
    template.id.version = "v1"
    return runs_pb2.CreateRunRequest(
        request_id=request_id,
        root="fake.task@v1",
        tasks=[runs_pb2.TaskCode(template=template, module="fake")],
        bundle_digest=digest,
        labels=labels or {},
    )


@asynccontextmanager
async def serving(
    home: Path, source: FakeRunSource, *, database: str = "", tls: tuple[Path, Path] | None = None
) -> AsyncIterator[ControlPlane]:
    serve: dict[str, str] = {"database": database} if database else {}
    if tls is not None:
        serve.update(tls_cert=str(tls[0]), tls_key=str(tls[1]))
    settings = load_settings(home=home, serve=serve)
    async with ControlPlane(settings, source=source, bind="127.0.0.1:0", token=TOKEN) as plane:
        yield plane


async def upload_bundle(client: RunClient, digest: str, data: bytes, tmp: Path) -> None:
    path = tmp / f"{hashlib.sha256(data).hexdigest()}.tar.gz"
    path.write_bytes(data)
    await client.upload(blobs_pb2.BlobRef(kind=blobs_pb2.BLOB_KIND_BUNDLE, digest=digest), path)
