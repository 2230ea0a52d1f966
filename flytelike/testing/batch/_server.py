"""moto's server application on a loopback port, served by a werkzeug server in a thread, behind a WSGI layer.

This is what ``moto.server.ThreadedMotoServer`` does, with the application wrapped before the server starts (so no
request ever reaches moto unwrapped) and the per-request log lines left out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from flytelike.testing.batch._middleware import WSGIApp

__all__ = ["MotoServer"]


class _QuietHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class MotoServer:
    """Serves every moto service on ``host:port`` (port 0: a free one) until stopped."""

    def __init__(self, wrap: Callable[[WSGIApp], WSGIApp], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._wrap = wrap
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "MotoServer.start() first"
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        app = self._wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._host, self._port, app, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="flytelike-batch-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
