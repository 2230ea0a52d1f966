"""Fault injection and request counters, applied to every API request by one aiohttp middleware.

Requests of the emulator's own scheduler and kubelet (told apart by their User-Agent) are counted apart and never
failed on purpose, so a test's counts and faults concern only the client under test.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from flytelike.testing.kubernetes._status import ApiError

__all__ = ["COMPONENT_AGENT", "Counters", "Faults", "endpoint_of"]

COMPONENT_AGENT = "flytelike-emulator/"
"""The User-Agent prefix of the emulator's scheduler and kubelet."""

_log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Faults:
    """What the API server does wrong on purpose; change the attributes at any time.

    Attributes:
        fail_rate: the fraction (0 to 1) of client requests answered with an error instead.
        fail_codes: the errors to choose from: 500 (InternalError) and/or 429 (TooManyRequests, with Retry-After).
        retry_after: the seconds a 429 asks the client to wait.
        drop_watch_every: close every watch after this many events (0: never), as a restarting API server does.
        seed: the seed of the random choices, for reproducible runs.
    """

    fail_rate: float = 0.0
    fail_codes: tuple[int, ...] = (500, 429)
    retry_after: int = 1
    drop_watch_every: int = 0
    seed: int | None = None
    expire_next_watch: bool = False
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.fail_rate <= 1:
            raise ValueError(f"fail_rate must be between 0 and 1 (a fraction of requests), not {self.fail_rate!r}")
        bad = [c for c in self.fail_codes if c not in (500, 429)]
        if bad or not self.fail_codes:
            raise ValueError(f"fail_codes must be a non-empty choice of 500 and 429, not {self.fail_codes!r}")
        if self.drop_watch_every < 0:
            raise ValueError(f"drop_watch_every must be 0 (never) or a number of events, not {self.drop_watch_every}")
        self._random.seed(self.seed)

    def injected(self) -> ApiError | None:
        """The error to answer the next client request with, if it is to fail."""
        if self.fail_rate <= 0 or self._random.random() >= self.fail_rate:
            return None
        code = self._random.choice(self.fail_codes)
        if code == 429:
            return ApiError(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
                headers={"Retry-After": str(self.retry_after)},
            )
        return ApiError(500, "InternalError", "Internal error occurred: injected by the emulator's fault injection")


class Counters:
    """Requests received, per endpoint (``create pods``, ``watch pods``, ``get pods/log``...).

    ``counters["create pods"]`` counts the requests of clients under test; :attr:`components` those of the
    emulator's scheduler and kubelet. Injected failures are counted too (the client did send them).
    """

    def __init__(self) -> None:
        self.clients: Counter[str] = Counter()
        self.components: Counter[str] = Counter()
        # Pods stored, by namespace/name: a pod made twice under one name (created, deleted, created) counts 2.
        self.created: Counter[str] = Counter()

    def __getitem__(self, endpoint: str) -> int:
        return self.clients[endpoint]

    @property
    def total(self) -> int:
        """All client requests."""
        return sum(self.clients.values())

    def reset(self) -> None:
        self.clients.clear()
        self.components.clear()
        self.created.clear()

    def as_json(self) -> dict[str, dict[str, int]]:
        return {"clients": dict(self.clients), "components": dict(self.components), "created": dict(self.created)}


def endpoint_of(request: web.Request) -> str | None:
    """``<verb> <resource>`` of an API request, as the real server's audit log names it; None outside the API."""
    resource_info = request.match_info.route.resource
    path = resource_info.canonical if resource_info is not None else ""
    if not path.startswith("/api/v1/"):
        return None
    parts = path.removeprefix("/api/v1/").split("/")
    if len(parts) >= 3 and parts[:2] == ["namespaces", "{namespace}"]:
        parts = parts[2:]
    scope = "collection" if len(parts) == 1 else "item"
    resource = parts[0] if len(parts) < 3 else f"{parts[0]}/{parts[2]}"
    method = request.method
    if scope == "collection":
        if method == "GET":
            watching = request.query.get("watch", "").lower() in ("1", "true")
            verb = "watch" if watching else "list"
        else:
            verb = {"POST": "create", "DELETE": "deletecollection"}.get(method, method.lower())
    else:
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}.get(
            method, method.lower()
        )
    return f"{verb} {resource}"


def middleware(faults: Faults, counters: Counters, token: str | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware that authenticates, counts and fails requests, and turns ApiError into Status bodies."""

    @web.middleware
    async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            endpoint = endpoint_of(request)
            component = request.headers.get("User-Agent", "").startswith(COMPONENT_AGENT)
            if token is not None and request.headers.get("Authorization") != f"Bearer {token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if endpoint is not None:
                (counters.components if component else counters.clients)[endpoint] += 1
                if not component:
                    error = faults.injected()
                    if error is not None:
                        raise error
            return await handler(request)
        except ApiError as error:
            return web.json_response(error.body(), status=error.code, headers=error.headers)
        except web.HTTPNotFound:
            missing = ApiError(404, "NotFound", "the server could not find the requested resource")
            return web.json_response(missing.body(), status=404)
        except web.HTTPMethodNotAllowed:
            refused = ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
            return web.json_response(refused.body(), status=405)
        except web.HTTPException:
            raise
        except Exception as error:
            # A bug of the emulator: answered as the real server answers a panic, and logged with its traceback.
            _log.exception("%s %s", request.method, request.path)
            internal = ApiError(500, "InternalError", f"Internal error occurred: {type(error).__name__}: {error}")
            return web.json_response(internal.body(), status=500)

    return handle
