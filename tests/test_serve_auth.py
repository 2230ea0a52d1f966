"""Every call to the control plane needs a token: the server's, or a run's own for that run only."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import anyio
import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serve_support import TOKEN, FakeRunSource, bundle_bytes, create_request, serving, upload_bundle

from flytelike._config import pem_setting
from flytelike._proto.remote.v1 import blobs_pb2, blobs_pb2_grpc, runs_pb2, runs_pb2_grpc
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._remote._client import ActionClient
from flytelike._remote._run_client import RunClient
from flytelike.errors import BackendError, ConfigError, ControllerUnreachableError


async def test_no_token_and_a_wrong_token_are_unauthenticated_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(tmp_path / "srv", FakeRunSource()) as plane:
        channel = grpc.aio.insecure_channel(plane.address)
        async with channel:
            runs = runs_pb2_grpc.RunServiceStub(channel)
            blobs = blobs_pb2_grpc.BlobServiceStub(channel)
            with caplog.at_level(logging.WARNING, logger="flytelike.serve"):
                for call in (
                    runs.ListRuns(runs_pb2.ListRunsRequest()),
                    runs.ListRuns(runs_pb2.ListRunsRequest(), metadata=(("authorization", "Bearer nope"),)),
                    blobs.FindMissing(blobs_pb2.FindMissingRequest()),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await call
                    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
            assert len(refusals) == 3
            assert any("no bearer token" in m for m in refusals)
            assert any("an unknown token" in m for m in refusals)
            assert not any("nope" in m for m in refusals)  # a token is never logged
            # Probes need no token.
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_run_token_reads_its_run_only_and_creates_nothing(tmp_path: Path) -> None:
    digest, data = bundle_bytes()
    async with serving(tmp_path / "srv", FakeRunSource()) as plane:
        async with RunClient(plane.address, token=TOKEN) as admin:
            await upload_bundle(admin, digest, data, tmp_path)
            mine = await admin.create_run(create_request(digest, request_id="mine"))
            other = await admin.create_run(create_request(digest, request_id="other"))
        async with RunClient(plane.address, token=mine.run_token) as client:
            assert (await client.get_run(mine.run.id)).id == mine.run.id
            assert await client.actions(mine.run.id) == []
            for call in (
                client.get_run(other.run.id),
                client.abort(other.run.id),
                client.actions(other.run.id),
            ):
                with pytest.raises(BackendError, match=rf"PERMISSION_DENIED.*not the token of run '{other.run.id}'"):
                    await call
            with pytest.raises(BackendError, match=r"PERMISSION_DENIED.*use the server's token"):
                await client.create_run(create_request(digest, request_id="sneaky"))
            with pytest.raises(BackendError, match="PERMISSION_DENIED"):
                await client.list_runs()
            with pytest.raises(BackendError, match="PERMISSION_DENIED"):
                await client.find_missing([blobs_pb2.BlobRef(kind=blobs_pb2.BLOB_KIND_BUNDLE, digest=digest)])


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: it makes the test's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_with_tls_configured_the_server_speaks_tls_only(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    async with serving(tmp_path / "srv", FakeRunSource(), tls=certificate) as plane:
        ca = certificate[0].read_bytes()
        async with RunClient(f"grpcs://{plane.address}", token=TOKEN, tls_ca=ca) as client:
            assert await client.list_runs() == []
        async with RunClient(plane.address, token=TOKEN) as plaintext:
            with pytest.raises(BackendError, match=r"ListRuns on .* failed: UNAVAILABLE"):
                await plaintext.list_runs()


class _NoCalls:
    async def submit(self, action_id: str, attempt: int, child: worker_pb2.SubmitChild) -> worker_pb2.ChildResult:
        raise AssertionError("no call is made")

    def logs(self, action_id: str, attempt: int, data: bytes) -> None:
        pass

    def heartbeat(self, action_id: str, attempt: int) -> None:
        pass


async def test_with_tls_tasks_call_back_over_tls_on_the_same_port(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    async with serving(tmp_path / "srv", FakeRunSource(), tls=certificate) as plane:
        controller = plane.controller
        assert controller is not None
        # What tasks are told: the server's own address, and the certificate to check it against.
        assert controller.address == plane.address
        assert controller.tls_ca == certificate[0].read_bytes()
        token = controller.register("r-tls", _NoCalls())  # type: ignore[arg-type]

        def connect(tls_ca: bytes | None) -> None:
            ActionClient.connect(
                controller.address, token=token, run_id="r-tls", action_id="0", attempt=1, timeout=5, tls_ca=tls_ca
            ).close()

        await anyio.to_thread.run_sync(connect, controller.tls_ca)
        with pytest.raises(ControllerUnreachableError, match="UNAVAILABLE"):
            await anyio.to_thread.run_sync(connect, None)  # plaintext on a TLS-only port


def test_a_certificate_setting_is_pem_text_or_a_file_holding_it(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert pem_setting("", setting="controller.tls_ca") is None
    assert pem_setting(pem, setting="controller.tls_ca") == pem.encode()
    (tmp_path / "ca.pem").write_text(pem)
    assert pem_setting(str(tmp_path / "ca.pem"), setting="controller.tls_ca") == pem.encode()
    with pytest.raises(ConfigError, match=r"controller.tls_ca.*cannot be read"):
        pem_setting(str(tmp_path / "missing.pem"), setting="controller.tls_ca")
    (tmp_path / "not.pem").write_text("hello")
    with pytest.raises(ConfigError, match=r"controller.tls_ca.*holds no PEM"):
        pem_setting(str(tmp_path / "not.pem"), setting="controller.tls_ca")
