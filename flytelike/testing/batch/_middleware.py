"""The WSGI layer in front of moto's server application: every request is counted by operation, may be answered
with an injected fault instead, and is pinned to the emulator's own AWS account so that two emulators in one
process (moto keeps its state in process-wide dictionaries) never see each other's jobs, queues or buckets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flytelike.testing.batch._faults import Counters, Faults
from flytelike.testing.batch._operations import error_answer, operation_of

__all__ = ["EmulatorMiddleware", "WSGIApp"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class EmulatorMiddleware:
    """Counts, injects faults and sets the account; everything else is moto's."""

    def __init__(self, app: WSGIApp, *, account_id: str, counters: Counters, faults: Faults) -> None:
        self._app = app
        self._account_id = account_id
        self.counters = counters
        self.faults = faults

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # moto reads the account from this header (unless MOTO_ACCOUNT_ID is set in the environment).
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = self._account_id
        if str(environ.get("PATH_INFO", "")).startswith("/moto-api/reset"):
            # It would reset every account of the process (other emulators too) and drop the emulated backend.
            body = b'{"message": "the Batch emulator does not support /moto-api/reset: start a new emulator"}'
            start_response(
                "400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        operation = operation_of(environ)
        if operation.service == "other":  # moto's own API (/moto-api), health checks: neither counted nor faulted
            return self._app(environ, start_response)
        fault = self.faults.pick(operation.name)
        self.counters.record(operation.name, faulted=fault is not None)
        if fault is None:
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)  # the client sent its body: drain it so the connection stays usable
        answer = error_answer(fault.kind, operation)
        start_response(answer.status, answer.headers)
        return [answer.body]
