"""moto's S3 server on 127.0.0.1 for the blob store tests, with a WSGI layer in front of it that counts requests by
S3 operation and injects faults (throttling, 5xx, 403) into the next requests of chosen operations."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest
from moto.server import ThreadedMotoServer
from werkzeug.serving import BaseWSGIServer

_REASONS = {403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def operation(environ: dict[str, Any]) -> str:
    """The S3 operation of a path-style request."""
    method = environ["REQUEST_METHOD"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    has_key = "/" in environ.get("PATH_INFO", "").lstrip("/")
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "GET":
        if not has_key:
            return "ListMultipartUploads" if "uploads" in query else "ListObjectsV2"
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "PUT":
        if not has_key:
            return "CreateBucket"
        return "UploadPart" if "partNumber" in query else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        return "CompleteMultipartUpload" if "uploadId" in query else "DeleteObjects"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else ("DeleteObject" if has_key else "DeleteBucket")
    return method


@dataclass
class _Fault:
    operation: str
    times: int
    status: int
    code: str
    applied: bool


class FaultyS3:
    """The WSGI application in front of moto's."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []  # (operation, path), in arrival order
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.requests.clear()
            self._faults.clear()

    def keys(self, operation: str) -> list[str]:
        """The paths of the requests of ``operation`` since the last reset."""
        with self._lock:
            return [path for op, path in self.requests if op == operation]

    def fail(
        self, operation: str, times: int, *, status: int = 503, code: str = "SlowDown", applied: bool = False
    ) -> None:
        """Answer the next ``times`` requests of ``operation`` with ``status`` and an S3 error ``code``; if
        ``applied``, moto carries the request out first (a response lost on the way back)."""
        with self._lock:
            self._faults.append(_Fault(operation, times, status, code, applied))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        op = operation(environ)
        with self._lock:
            self.counts[op] += 1
            self.requests.append((op, environ.get("PATH_INFO", "")))
            fault = next((f for f in self._faults if f.operation == op and f.times > 0), None)
            if fault is not None:
                fault.times -= 1
        if fault is None:
            return self.app(environ, start_response)
        if fault.applied:
            for _ in self.app(environ, lambda status, headers, exc_info=None: None):
                pass
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length:
                environ["wsgi.input"].read(length)  # the client sent its body; keep the connection usable
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
            f"<Message>injected {fault.code}</Message><RequestId>fault</RequestId></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        start_response(f"{fault.status} {_REASONS.get(fault.status, 'Error')}", headers)
        return [b""] if op in ("HeadObject", "HeadBucket") else [body]


@contextlib.contextmanager
def moto_s3() -> Iterator[tuple[str, FaultyS3]]:
    """A running server on a free port of 127.0.0.1: its endpoint URL and its fault layer; stopped afterwards."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    wsgi = getattr(server, "_server", None)
    # The fault layer wraps the application of the server moto starts; fail loudly if moto changes how it does.
    assert isinstance(wsgi, BaseWSGIServer), f"moto's ThreadedMotoServer no longer keeps a werkzeug server: {wsgi!r}"
    faults = FaultyS3(wsgi.app)
    wsgi.app = faults
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}", faults
    finally:
        server.stop()
        wsgi.server_close()


@contextlib.contextmanager
def moto_s3_with_test_credentials() -> Iterator[tuple[str, FaultyS3]]:
    """:func:`moto_s3` with fake AWS credentials in the environment and no AWS config or profile of this machine
    read (moto accepts any credentials; botocore must find some, and never this machine's own)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        }.items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        with moto_s3() as found:
            yield found
