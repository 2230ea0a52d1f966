"""List and watch responses: a ``*List`` object, or a stream of watch events resumed from a resourceVersion."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from aiohttp import web

from flytelike.testing.kubernetes._faults import Faults
from flytelike.testing.kubernetes._status import ApiError, bad_request, expired
from flytelike.testing.kubernetes._store import Change, Store

__all__ = ["WatchSettings", "list_response", "watch_response"]

JSON = dict[str, Any]
Predicate = Callable[[JSON | None], bool]


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """How watches behave.

    Attributes:
        bookmark_interval: seconds between BOOKMARK events on watches that allow them (the real server: about 60).
        default_timeout: seconds a watch without ``timeoutSeconds`` stays open (the real server: 30 to 60 min).
    """

    bookmark_interval: float = 1.0
    default_timeout: float = 1800.0


def _in(namespace: str | None, obj: JSON) -> bool:
    return namespace is None or obj["metadata"].get("namespace") == namespace


def list_response(
    request: web.Request, store: Store, kind: str, namespace: str | None, predicate: Predicate
) -> web.Response:
    """A ``*List``, paginated by ``limit`` and ``continue`` (the token holds the offset and the version listed)."""
    items = [o for o in store.listing(kind, namespace) if predicate(o)]
    rv = store.resource_version
    start = 0
    token = request.query.get("continue")
    if token:
        try:
            rv, start = (int(part) for part in base64.urlsafe_b64decode(token.encode()).decode().split(":"))
        except ValueError:
            raise bad_request(f"invalid continue token: {token!r}") from None
        if rv < store.compacted:
            raise expired(rv, store.compacted + 1)
    try:
        limit = int(request.query.get("limit") or 0)
    except ValueError:
        raise bad_request(f"limit must be a whole number, not {request.query['limit']!r}") from None
    end = start + limit if limit > 0 else len(items)
    metadata: JSON = {"resourceVersion": str(rv)}
    if end < len(items):
        metadata["continue"] = base64.urlsafe_b64encode(f"{rv}:{end}".encode()).decode()
        metadata["remainingItemCount"] = len(items) - end
    body: JSON = {"kind": f"{kind}List", "apiVersion": "v1", "metadata": metadata}
    body["items"] = items[start:end]
    return web.json_response(body)


def _event_type(change: Change, predicate: Predicate) -> str | None:
    # A selector watch sees an object enter (ADDED) or leave (DELETED) the selection, as the real watch cache does.
    was = change.old is not None and predicate(change.old)
    matches = predicate(change.obj)
    if change.type == "DELETED":
        return "DELETED" if was or matches else None
    if matches:
        return "MODIFIED" if was else "ADDED"
    return "DELETED" if was else None


async def watch_response(
    request: web.Request,
    store: Store,
    kind: str,
    namespace: str | None,
    predicate: Predicate,
    *,
    faults: Faults | None,
    settings: WatchSettings,
) -> web.StreamResponse:
    """Stream watch events: initial ADDED events unless resuming, then changes, bookmarks, and 410 when too old."""
    query = request.query
    rv_text = query.get("resourceVersion", "")
    try:
        timeout = float(query["timeoutSeconds"]) if "timeoutSeconds" in query else settings.default_timeout
        start = int(rv_text) if rv_text not in ("", "0") else None
    except ValueError:
        raise bad_request(f"invalid resourceVersion or timeoutSeconds: {dict(query)}") from None
    bookmarks = query.get("allowWatchBookmarks", "").lower() in ("1", "true")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    sent = 0

    async def send(type_: str, obj: JSON) -> bool:
        nonlocal sent
        await response.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")
        sent += 1
        drop = faults.drop_watch_every if faults is not None else 0
        return not (drop and type_ != "ERROR" and sent % drop == 0)

    try:
        if faults is not None and faults.expire_next_watch:
            faults.expire_next_watch = False
            oldest = store.resource_version
            await send("ERROR", expired(start or 0, oldest).body())
            return await _end(response)
        with anyio.move_on_after(timeout):
            last = store.resource_version
            if start is None:
                for obj in store.listing(kind, namespace):
                    if predicate(obj) and not await send("ADDED", obj):
                        return await _end(response)
            else:
                last = start
            while True:
                try:
                    changes = store.changes_after(last, kind)
                except ApiError as error:
                    await send("ERROR", error.body())
                    break
                last = store.resource_version
                for change in changes:
                    if not _in(namespace, change.obj):
                        continue
                    type_ = _event_type(change, predicate)
                    if type_ is not None and not await send(type_, change.obj):
                        return await _end(response)
                if not bookmarks:
                    await store.wait_for_change(last)
                    continue
                with anyio.move_on_after(settings.bookmark_interval) as waited:
                    await store.wait_for_change(last)
                if waited.cancelled_caught:
                    bookmark = {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": str(last)}}
                    await send("BOOKMARK", bookmark)
    except (ConnectionResetError, ConnectionError):
        return response
    return await _end(response)


async def _end(response: web.StreamResponse) -> web.StreamResponse:
    with contextlib.suppress(ConnectionResetError, ConnectionError):
        await response.write_eof()
    return response
