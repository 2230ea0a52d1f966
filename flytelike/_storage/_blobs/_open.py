"""A blob store from its URL: ``file:///absolute/path`` or ``s3://bucket/prefix``."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from flytelike._storage._blobs._file import FileStore
from flytelike._storage._blobs._layout import validate_key
from flytelike._storage._blobs._protocol import BlobStore
from flytelike._storage._blobs._s3 import S3Options, S3Store
from flytelike.errors import ConfigError, InvalidKeyError

__all__ = ["SCHEMES", "open_store"]

SCHEMES = ("file", "s3")
ACCEPTED = "file:///absolute/path or s3://bucket/prefix"
# S3's bucket naming rules, a little wider (S3-compatible servers allow underscores and capitals).
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def open_store(
    url: str, *, endpoint_url: str | None = None, s3_options: S3Options | None = None, setting: str = "store.url"
) -> BlobStore:
    """The blob store at ``url``, chosen by its scheme; use it as an async context manager.

    Args:
        url: ``file:///absolute/path`` (a directory, created on the first write) or ``s3://bucket/prefix``.
        endpoint_url: an S3-compatible server for ``s3://`` URLs (``[store] endpoint_url``); ignored for files.
        s3_options: part sizes, retries and timeouts of an ``s3://`` store.
        setting: the setting ``url`` came from, named by errors.

    Raises:
        ConfigError: ``url`` is not a store URL; the error names ``setting``, the value and the accepted schemes.

    Example:
        >>> open_store("s3://my-bucket/flytelike")
        S3Store('my-bucket', prefix='flytelike', endpoint_url=None)
        >>> try:
        ...     open_store("gs://my-bucket")
        ... except ConfigError as e:
        ...     print(e.field, e.problem, "/", e.accepted)
        store.url the scheme 'gs' has no blob store / file:///absolute/path or s3://bucket/prefix
    """
    if not isinstance(url, str):
        raise ConfigError(setting, url, "is not a string", accepted=ACCEPTED)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise ConfigError(setting, url, "a store URL has no query or fragment", accepted=ACCEPTED)
    if scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost"):
            problem = f"a file URL names no host (this one names {parts.netloc!r})"
            raise ConfigError(setting, url, problem, accepted=ACCEPTED)
        if not path.startswith("/"):
            raise ConfigError(setting, url, "the path of a file URL must be absolute", accepted=ACCEPTED)
        return FileStore(path)
    if scheme == "s3":
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket):
            problem = "names no bucket" if not bucket else f"{bucket!r} is not a bucket name"
            raise ConfigError(setting, url, problem, accepted=ACCEPTED)
        prefix = unquote(parts.path).strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except InvalidKeyError as e:
                raise ConfigError(setting, url, f"the prefix is not valid: {e}", accepted=ACCEPTED) from None
        return S3Store(bucket, prefix=prefix, endpoint_url=endpoint_url, options=s3_options)
    problem = f"the scheme {scheme!r} has no blob store" if scheme else "is not a URL (it has no scheme)"
    raise ConfigError(setting, url, problem, accepted=ACCEPTED)
