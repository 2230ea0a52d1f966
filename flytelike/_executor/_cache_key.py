"""Cache keys from literal bytes: the executor computes them without the user's code.

The key is the task's cache version, its salt and its inputs, less the ignored ones, as deterministic literal bytes
in which a file or directory with a content digest is named by that digest alone: the same content under another
path (``in.txt``, ``./in.txt``) hits, and changed content misses.
"""

from __future__ import annotations

import hashlib

from flytelike._executor._exec_task import ExecTask
from flytelike._proto.core.v1 import literals_pb2

__all__ = ["cache_key", "recovery_digest"]


def _by_content(literal: literals_pb2.Literal) -> None:
    kind = literal.WhichOneof("value")
    if kind == "blob_value":
        if literal.blob_value.digest:
            literal.blob_value.uri = ""
    elif kind == "list_value":
        for item in literal.list_value.literals:
            _by_content(item)
    elif kind == "dict_value":
        for item in literal.dict_value.literals.values():
            _by_content(item)
    elif kind == "record_value":
        for item in literal.record_value.fields.values():
            _by_content(item)
    elif kind == "union_value":
        _by_content(literal.union_value.value)


def cache_key(task: ExecTask, inputs: bytes) -> str:
    """The hex key of ``task`` run on ``inputs`` (a serialized LiteralMap)."""
    literals = literals_pb2.LiteralMap.FromString(inputs)
    for name in task.cache_ignored:
        literals.literals.pop(name, None)
    for literal in literals.literals.values():
        _by_content(literal)
    digest = hashlib.sha256(f"{task.name}\0{task.cache_version or task.version}\0".encode())
    if task.cache_salt:
        digest.update(f"salt\0{task.cache_salt}\0".encode())
    digest.update(literals.SerializeToString(deterministic=True))
    return digest.hexdigest()


def recovery_digest(task: ExecTask, inputs: bytes) -> str:
    """The hex digest that tells whether an earlier action may stand in for one about to run: the same task name
    and version (not the cache version: a rerun recovers only the code that ran) and the same inputs, as the
    deterministic bytes the SDK encodes them to (unparsed: this runs for every action of a recording run)."""
    digest = hashlib.sha256(f"{task.name}\0{task.version}\0".encode())
    digest.update(inputs)
    return digest.hexdigest()
