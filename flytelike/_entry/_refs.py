"""Child calls of a task running outside the controller, with their files and large values moved through the store.

A call's inputs may name files the task made on its machine, and its result may name files the controller stored;
both travel by reference (see :mod:`flytelike._storage._refs`). Values too large for one message travel as a store
object: a call's inputs as ``inputs_uri``, its outputs as ``outputs_uri``.

:class:`RefChannel` wraps the channel to the controller: a call or a result that holds neither costs one parse of
its literal map; one that does is handled on a thread of its own, with its own connection to the store, because a
sync task's body may be blocking the event loop the task runs on.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import anyio

from flytelike._proto.worker.v1 import worker_pb2
from flytelike._storage import data_key, download_refs, has_blobs, open_store, upload_refs
from flytelike._worker import _frames
from flytelike._worker._children import ChildChannel, Deliver

__all__ = ["INLINE_BYTES", "RefChannel"]

Kind = worker_pb2.Error.Kind

INLINE_BYTES = _frames.INLINE_BYTES


class RefChannel:
    """A :class:`~flytelike._worker._children.ChildChannel` that moves files and large values through the store.

    Args:
        inner: the channel to the controller.
        store_url: the store both sides share.
        endpoint_url: its S3-compatible endpoint, if any.
        into: where files that results name are brought back to.
        inline: the largest literal map sent inside a message.
    """

    def __init__(
        self, inner: ChildChannel, store_url: str, endpoint_url: str | None, into: Path, *, inline: int = INLINE_BYTES
    ) -> None:
        self._inner = inner
        self._store_url = store_url
        self._endpoint_url = endpoint_url
        self._into = into
        self._inline = inline

    def submit(self, message: worker_pb2.SubmitChild, deliver: Deliver) -> None:
        answer = self._answer(deliver)
        if not (len(message.inputs) > self._inline or has_blobs(message.inputs)):
            self._inner.submit(message, answer)
            return

        def send() -> None:
            try:
                prepared = anyio.run(self._prepare, message)
            except Exception as e:
                deliver(_failed(message.call, f"the inputs of task {message.task} could not be stored: {e}"))
                return
            self._inner.submit(prepared, answer)

        _thread(send)

    def cancel(self, call: int) -> None:
        self._inner.cancel(call)

    def abandon(self, reason: str) -> None:
        self._inner.abandon(reason)

    async def _prepare(self, message: worker_pb2.SubmitChild) -> worker_pb2.SubmitChild:
        async with open_store(self._store_url, endpoint_url=self._endpoint_url) as store:
            inputs = await upload_refs(message.inputs, store)
            prepared = worker_pb2.SubmitChild()
            prepared.CopyFrom(message)
            if len(inputs) > self._inline:
                key = data_key(_sha256(inputs))
                await store.put(key, inputs)
                prepared.inputs_uri = store.url(key)
            else:
                prepared.inputs = inputs
            return prepared

    def _answer(self, deliver: Deliver) -> Deliver:
        def answer(result: worker_pb2.ChildResult) -> None:
            outcome = result.WhichOneof("outcome")
            if outcome == "error" or (outcome == "outputs" and not has_blobs(result.outputs)):
                deliver(result)
                return

            def fetch() -> None:
                try:
                    deliver(anyio.run(self._fetch, result))
                except Exception as e:
                    deliver(_failed(result.call, f"the result could not be read from the store: {e}"))

            _thread(fetch)

        return answer

    async def _fetch(self, result: worker_pb2.ChildResult) -> worker_pb2.ChildResult:
        async with open_store(self._store_url, endpoint_url=self._endpoint_url) as store:
            if result.WhichOneof("outcome") == "outputs_uri":
                base = self._store_url.rstrip("/") + "/"
                if not result.outputs_uri.startswith(base):
                    raise ValueError(f"{result.outputs_uri} is not in the store {self._store_url}")
                outputs = await store.get(result.outputs_uri[len(base) :])
            else:
                outputs = result.outputs
            outputs = await download_refs(outputs, store, self._into)
            return worker_pb2.ChildResult(call=result.call, outputs=outputs)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _thread(target: Callable[[], None]) -> None:
    threading.Thread(target=target, name="flytelike-refs", daemon=True).start()


def _failed(call: int, message: str) -> worker_pb2.ChildResult:
    error = worker_pb2.Error(kind=Kind.SYSTEM, type_name="flytelike.errors.StoreError", message=message)
    return worker_pb2.ChildResult(call=call, error=error)
