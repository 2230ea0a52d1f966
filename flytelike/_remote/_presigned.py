"""An HTTP PUT of a file to a presigned URL (the client's half of a presigned upload), over aiohttp.

aiohttp comes with the ``aws`` and ``emulators`` extras, not with flytelike itself: without it there is no direct
upload, and the client streams through the server instead (:func:`available` says which).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import ModuleType

import anyio

from flytelike.errors import BackendError

__all__ = ["PresignedPutError", "available", "put_file"]

CHUNK = 1 << 20
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0  # S3 answers a PUT once the whole body is in: a large body on a slow link takes long
_SHOWN = 300  # characters of an error body quoted in the error


class PresignedPutError(BackendError):
    """The PUT to a presigned URL failed (refused, or the connection did); the client falls back to streaming."""


@functools.cache
def _aiohttp() -> ModuleType | None:
    try:
        import aiohttp  # lazy: ~100 ms to import, and an optional dependency
    except ImportError:
        return None
    return aiohttp


def available() -> bool:
    """Whether this process can PUT to presigned URLs (aiohttp is installed)."""
    return _aiohttp() is not None


async def put_file(url: str, path: Path, *, size: int, headers: Mapping[str, str]) -> None:
    """PUT the ``size`` bytes of the file at ``path`` to ``url``, streamed, with ``headers``.

    Raises:
        PresignedPutError: aiohttp is missing, the connection failed, or the answer was not a 2xx (its status and
            the start of its body quoted).
    """
    aiohttp = _aiohttp()
    if aiohttp is None:
        raise PresignedPutError("aiohttp is not installed (pip install 'flytelike[aws]')")
    where = url.split("?", 1)[0]  # the query holds the signature: never in a message
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
    async with await anyio.open_file(path, "rb") as source:

        async def body() -> AsyncIterator[bytes]:
            while chunk := await source.read(CHUNK):
                yield chunk

        # An explicit Content-Length: without it aiohttp would send a streamed body chunked, which S3 refuses.
        sent = {k: v for k, v in headers.items() if k.lower() != "content-length"} | {"Content-Length": str(size)}
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.put(url, data=body(), headers=sent) as response,
            ):
                if not 200 <= response.status < 300:
                    text = (await response.text(errors="replace"))[:_SHOWN]
                    raise PresignedPutError(f"PUT {where} answered HTTP {response.status}: {text}")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise PresignedPutError(f"PUT {where} failed: {type(e).__name__}: {e}") from e
