"""Blob keys: their validation and the store layout of design.md §4.3.

A key is a relative path of plain names joined by ``/``, the same in every store (``file://`` maps it under its
root directory, ``s3://`` under its prefix)::

    bundles/sha256/<hex>.tar.gz                          immutable, content-addressed
    runs/<run>/<action>/inputs.pb                        LiteralMap
    runs/<run>/<action>/<attempt>/outputs.pb | error.pb | metrics.json | logs
    data/sha256/<hex>                                    offloaded File/Dir contents and large literals

Content-addressed keys (``data/...``) name the sha256 of their content: stores write them once and verify them on
every read. Bundle keys (``bundles/...``) are immutable too (written once), but name the bundle's digest, the sha256
of its manifest (known before any archive is written, and independent of the compressor): the archive is verified
against it, file by file, when it is extracted. Each attempt has its own prefix, so a zombie attempt never
overwrites a later one.

Example:
    >>> attempt_prefix("r1", "a0.2", 3).outputs
    'runs/r1/a0.2/3/outputs.pb'
    >>> key_digest(data_key("sha256:" + "ab" * 32)) == "ab" * 32
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flytelike.errors import InvalidKeyError

__all__ = [
    "MAX_KEY_BYTES",
    "AttemptKeys",
    "attempt_prefix",
    "bundle_key",
    "data_key",
    "inputs_key",
    "is_immutable",
    "key_digest",
    "validate_key",
]

# S3's limit on an object key, which a store prefix shares; a file system's limit on a name is its own business.
MAX_KEY_BYTES = 1024
# Stores write an object beside its final name and rename it; no key may name one of those files.
TEMP_PREFIX = ".fl-tmp-"
_HEX = re.compile(r"[0-9a-f]{64}")
_CONTENT = re.compile(r"data/sha256/(?P<data>[0-9a-f]{64})")
_BUNDLE = re.compile(r"bundles/sha256/[0-9a-f]{64}\.tar\.gz")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ACCEPTED = "a relative path of names joined by '/', e.g. 'runs/r1/a0/inputs.pb'"


def _invalid(key: object, problem: str) -> InvalidKeyError:
    return InvalidKeyError(f"blob key {key!r}: {problem}; accepted: {_ACCEPTED}", key=str(key))


def validate_key(key: str) -> str:
    """``key`` if it is a valid blob key, else an :class:`~flytelike.errors.InvalidKeyError` saying why.

    A valid key is non-empty, relative, at most 1024 bytes of UTF-8, and made of parts that are neither empty, ``.``
    nor ``..``, and hold no backslash or control character.
    """
    if not isinstance(key, str):
        raise _invalid(key, f"is a {type(key).__name__}, not a string")
    if not key:
        raise _invalid(key, "is empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise _invalid(key, "is not valid UTF-8 (it holds a lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise _invalid(key, f"is {size} bytes long, more than {MAX_KEY_BYTES}")
    if key.startswith("/"):
        raise _invalid(key, "is absolute")
    if "\\" in key:
        raise _invalid(key, "holds a backslash")
    if _CONTROL.search(key):
        raise _invalid(key, "holds a control character")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise _invalid(key, f"has a part {part!r}" if part else "has an empty part")
        if part.startswith(TEMP_PREFIX):
            raise _invalid(key, f"has a part starting with {TEMP_PREFIX!r}, which stores keep for temporary files")
    return key


def _name(what: str, value: object) -> str:
    """One part of a key: a run or action id."""
    if not isinstance(value, str) or "/" in value:
        raise _invalid(value, f"is not a valid {what} id: it must be one name, without '/'")
    return validate_key(value)


def _hex(digest: str) -> str:
    """The lowercase hex of a sha256 digest given as ``<hex>`` or ``sha256:<hex>``."""
    text = digest.removeprefix("sha256:") if isinstance(digest, str) else digest
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        raise _invalid(digest, "is not a sha256 digest: 64 lowercase hex digits, optionally after 'sha256:'")
    return text


def bundle_key(digest: str) -> str:
    """The key of the code bundle whose digest is ``digest`` (``<hex>`` or ``sha256:<hex>``)."""
    return f"bundles/sha256/{_hex(digest)}.tar.gz"


def data_key(digest: str) -> str:
    """The key of offloaded content (a File's bytes, a large literal) whose sha256 is ``digest``."""
    return f"data/sha256/{_hex(digest)}"


def inputs_key(run: str, action: str) -> str:
    """The key of an action's inputs (a LiteralMap), shared by all its attempts."""
    return f"runs/{_name('run', run)}/{_name('action', action)}/inputs.pb"


@dataclass(frozen=True, slots=True)
class AttemptKeys:
    """The keys one attempt writes, under its own prefix."""

    prefix: str

    @property
    def outputs(self) -> str:
        """The outputs (a LiteralMap), written last: an attempt succeeded when this exists."""
        return f"{self.prefix}/outputs.pb"

    @property
    def error(self) -> str:
        """The structured error of a failed attempt."""
        return f"{self.prefix}/error.pb"

    @property
    def metrics(self) -> str:
        """Peak memory, cpu and wall time, always written."""
        return f"{self.prefix}/metrics.json"

    @property
    def logs(self) -> str:
        """The attempt's output (stdout and stderr)."""
        return f"{self.prefix}/logs"

    @property
    def verdict(self) -> str:
        """The controller's word on an attempt that ended without outputs or error (its pod killed, evicted,
        cancelled), written before the controller removes what ran it: the attempt's end outlives the pod."""
        return f"{self.prefix}/verdict.json"


def attempt_prefix(run: str, action: str, attempt: int) -> AttemptKeys:
    """The keys of attempt ``attempt`` (1-based) of an action."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise _invalid(attempt, "is not a valid attempt number: a whole number >= 1")
    return AttemptKeys(f"runs/{_name('run', run)}/{_name('action', action)}/{attempt}")


def key_digest(key: str) -> str | None:
    """The sha256 hex of the content that a content-addressed (``data/``) key names, or None for any other key."""
    m = _CONTENT.fullmatch(key)
    return None if m is None else m.group("data")


def is_immutable(key: str) -> bool:
    """Whether ``key`` is written once (a content-addressed object or a bundle): a second put is a no-op."""
    return _CONTENT.fullmatch(key) is not None or _BUNDLE.fullmatch(key) is not None
