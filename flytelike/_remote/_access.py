"""Who may call the control plane: the server's bearer token, and per-run tokens handed out by CreateRun.

The server's token may do everything. A run's token (made when the run is created, kept only as its sha256) may
read and abort that run only. Every refusal is logged on the ``flytelike.serve`` logger with the peer and the
method, never the token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from flytelike._remote._auth import presented_token
from flytelike._remote._state import ServerState

__all__ = ["Access", "Caller", "new_run_token", "token_sha256"]

log = logging.getLogger("flytelike.serve")

Context = grpc.aio.ServicerContext[Any, Any]


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_run_token() -> str:
    return "run-" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call comes from: the server's token holder (``run_id`` None), or the holder of one run's token."""

    run_id: str | None

    def may_touch(self, run_id: str) -> bool:
        return self.run_id is None or self.run_id == run_id


class Access:
    """Checks the bearer token of each call against the server's token and the runs' tokens."""

    def __init__(self, token: str, state: ServerState) -> None:
        if not token:
            raise ValueError("the server's token must not be empty")
        self._token = token.encode()
        self._state = state

    async def caller(self, context: Context, method: str) -> Caller:
        """Who is calling; aborts the call with UNAUTHENTICATED for no token or an unknown one."""
        token = presented_token(context.invocation_metadata())
        if token is not None:
            if hmac.compare_digest(token.encode(), self._token):
                return Caller(None)
            run_id = await self._state.run_for_token(token_sha256(token))
            if run_id is not None:
                return Caller(run_id)
        why = "no bearer token" if token is None else "an unknown token"
        log.warning("refused %s from %s: %s", method, context.peer(), why)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{method}: {why} (authorization: Bearer <token>)")
        raise AssertionError("unreachable: context.abort raises")

    async def server(self, context: Context, method: str) -> Caller:
        """The caller, who must hold the server's token (a run token is PERMISSION_DENIED)."""
        caller = await self.caller(context, method)
        if caller.run_id is not None:
            log.warning("refused %s from %s: a token of run %r", method, context.peer(), caller.run_id)
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"{method}: a run's token cannot do this; use the server's token"
            )
        return caller

    async def run(self, context: Context, method: str, run_id: str) -> Caller:
        """The caller, who must hold the server's token or ``run_id``'s own."""
        caller = await self.caller(context, method)
        if not caller.may_touch(run_id):
            log.warning(
                "refused %s from %s: a token of run %r used for run %r", method, context.peer(), caller.run_id, run_id
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"{method}: the token presented is not the token of run {run_id!r}"
            )
        return caller
