"""Every AWS call of a Batch backend: one Batch and one CloudWatch Logs client, one token bucket, retries.

aioboto3 is imported when the backend is entered, never by ``import flytelike`` or a run without Batch tasks.
botocore's own retries are off: a call is retried here, after the bucket gives it a token again, with exponential
backoff and full jitter on throttling (``TooManyRequestsException``, HTTP 429), 5xx and connection errors, and
never on other 4xx (a ``ClientException`` says what Batch refused). A failure that may have been carried out (a
5xx or a lost connection) is first checked with the caller's ``applied`` lookup, so a SubmitJob is never sent twice.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import anyio

from flytelike._config import BatchSettings
from flytelike.errors import BackendError

__all__ = ["AwsCalls", "TokenBucket", "is_client_error"]

_THROTTLING = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServerException",
        "InternalFailure",
    }
)


class TokenBucket:
    """At most ``rate`` calls a second on average, bursts of up to ``rate`` calls; waiters are served in turn."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._stamp: float | None = None
        self._lock = anyio.Lock()

    async def take(self) -> None:
        async with self._lock:  # held while waiting, so callers get their tokens in the order they asked
            now = anyio.current_time()
            if self._stamp is not None:
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                await anyio.sleep((1 - self._tokens) / self.rate)
                self._stamp = anyio.current_time()
                self._tokens = 1
            self._tokens -= 1


@functools.cache
def _aws() -> SimpleNamespace:
    # Imported on first use: aioboto3 and botocore cost ~200 ms, which only runs with Batch tasks pay.
    import aioboto3
    import aiohttp
    import botocore.exceptions
    from aiobotocore.config import AioConfig

    transient = (
        botocore.exceptions.HTTPClientError,
        botocore.exceptions.ConnectionError,
        botocore.exceptions.ResponseStreamingError,
        aiohttp.ClientError,
        TimeoutError,
    )
    return SimpleNamespace(
        Session=aioboto3.Session,
        Config=AioConfig,
        ClientError=botocore.exceptions.ClientError,
        NoRegionError=botocore.exceptions.NoRegionError,
        transient=transient,
    )


def is_client_error(e: BaseException, *codes: str) -> bool:
    """Whether ``e`` is an AWS error answer (of one of ``codes``, when given)."""
    if not isinstance(e, _aws().ClientError):
        return False
    return not codes or e.response.get("Error", {}).get("Code", "") in codes


def _kind(e: BaseException) -> str:
    """``throttled`` (not carried out), ``maybe`` (5xx, lost connection: perhaps carried out) or ``final``."""
    modules = _aws()
    if isinstance(e, modules.ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = e.response.get("Error", {}).get("Code", "")
        if status == 429 or code in ("TooManyRequestsException", "ThrottlingException", "Throttling"):
            return "throttled"
        if status >= 500 or code in _THROTTLING:
            return "maybe"
        return "final"
    return "maybe" if isinstance(e, modules.transient) else "final"


def _message(e: BaseException) -> str:
    if isinstance(e, _aws().ClientError):
        error = e.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(e).__name__}: {e}"


class AwsCalls:
    """The clients of one backend and the one budget (``[batch] calls_per_second``) all their calls share.

    Attributes:
        counts: calls sent by operation (``SubmitJob``, ``DescribeJobs``, ``GetLogEvents`` ...), retries included.
    """

    def __init__(
        self,
        settings: BatchSettings,
        *,
        max_attempts: int = 10,
        backoff: float = 0.2,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self.bucket = TokenBucket(settings.calls_per_second)
        self.counts: Counter[str] = Counter()
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[str, Any] = {}

    async def __aenter__(self) -> AwsCalls:
        modules = _aws()
        config = modules.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # retried here, through the token bucket
            max_pool_connections=32,
            connect_timeout=10,
            read_timeout=60,
        )
        key, secret = self._credentials or (None, None)
        session = modules.Session(aws_access_key_id=key, aws_secret_access_key=secret)
        for service in ("batch", "logs"):
            creator = session.client(
                service, endpoint_url=self.settings.endpoint_url, region_name=self.settings.region, config=config
            )
            try:
                self._clients[service] = await self._stack.enter_async_context(creator)
            except modules.NoRegionError:
                await self._stack.aclose()
                raise BackendError(
                    "no AWS region is configured for Batch: set [batch] region (FLYTELIKE_BATCH__REGION) or "
                    "AWS_DEFAULT_REGION; to try it here without AWS: flytelike emulator batch"
                ) from None
        return self

    def client(self, service: str) -> Any:
        """The aiobotocore client of ``service`` (``batch`` or ``logs``), e.g. to watch what is sent."""
        client = self._clients.get(service)
        if client is None:
            raise BackendError(f"the Batch backend is not entered (no {service} client)")
        return client

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            self._clients.clear()
            await self._stack.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(
        self,
        service: str,
        operation: str,
        params: dict[str, Any],
        *,
        applied: Callable[[], Awaitable[dict[str, Any] | None]] | None = None,
    ) -> dict[str, Any]:
        """``operation`` (``SubmitJob``) of ``service`` (``batch`` or ``logs``) with ``params``, retried.

        Args:
            applied: before a call that may have been carried out is sent again, returns its result if it was.

        Raises:
            BackendError: AWS refused the call, or it kept failing (the message names the operation and the cause);
                an answer's error code is ``code`` on the error.
        """
        method = getattr(self.client(service), _snake(operation))
        for attempt in range(1, self._max_attempts + 1):
            await self.bucket.take()
            self.counts[operation] += 1
            try:
                result: dict[str, Any] = await method(**params)
                return result
            except Exception as e:
                kind = _kind(e)
                if kind == "final" or attempt == self._max_attempts:
                    tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                    error = BackendError(f"AWS {service} {operation} failed{tries}: {_message(e)}")
                    error.code = e.response.get("Error", {}).get("Code", "") if is_client_error(e) else ""  # type: ignore[attr-defined]
                    raise error from e
            await anyio.sleep(random.uniform(0, min(10.0, self._backoff * 2 ** (attempt - 1))))
            if kind == "maybe" and applied is not None:
                found = await applied()
                if found is not None:
                    return found
        raise AssertionError("unreachable")  # pragma: no cover


def _snake(operation: str) -> str:
    out = [operation[0].lower()]
    for c in operation[1:]:
        out.append(f"_{c.lower()}" if c.isupper() else c)
    return "".join(out)
