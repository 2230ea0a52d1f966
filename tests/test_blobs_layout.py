"""Blob keys and layout (design.md §4.3), store URLs, the [store] settings, the store errors, and that the storage
layer imports no AWS client until an s3:// store sends a request."""

from __future__ import annotations

import os
import pickle
import posixpath
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from flytelike import _config
from flytelike._config import StoreSettings, load_settings
from flytelike._storage import (
    SCHEMES,
    FileStore,
    S3Options,
    S3Store,
    attempt_prefix,
    bundle_key,
    data_key,
    inputs_key,
    is_immutable,
    key_digest,
    open_store,
    validate_key,
)
from flytelike.errors import (
    BlobNotFoundError,
    ConfigError,
    DigestMismatchError,
    InvalidKeyError,
    SpecError,
    StoreError,
)

ROOT = Path(__file__).resolve().parents[1]
HEX = "0123456789abcdef" * 4


def test_layout() -> None:
    assert bundle_key(HEX) == f"bundles/sha256/{HEX}.tar.gz"
    assert bundle_key("sha256:" + HEX) == bundle_key(HEX)
    assert data_key(HEX) == f"data/sha256/{HEX}"
    assert inputs_key("r20261201-a1b2c3", "a0.3.1") == "runs/r20261201-a1b2c3/a0.3.1/inputs.pb"
    keys = attempt_prefix("r1", "a0.3", 2)
    assert keys.prefix == "runs/r1/a0.3/2"
    assert (keys.outputs, keys.error, keys.metrics, keys.logs) == (
        "runs/r1/a0.3/2/outputs.pb",
        "runs/r1/a0.3/2/error.pb",
        "runs/r1/a0.3/2/metrics.json",
        "runs/r1/a0.3/2/logs",
    )
    assert attempt_prefix("r1", "a0.3", 3).outputs != keys.outputs  # a zombie attempt never overwrites a later one
    assert key_digest(bundle_key(HEX)) is None  # a bundle is verified by its manifest, on extraction
    assert is_immutable(bundle_key(HEX))
    assert is_immutable(data_key(HEX))
    assert not is_immutable(keys.outputs)
    assert key_digest(data_key(HEX)) == HEX
    for plain in (keys.outputs, f"data/sha256/{HEX}.x", f"bundles/sha256/{HEX}", f"data/sha256/{HEX[:-1]}"):
        assert key_digest(plain) is None


@pytest.mark.parametrize("digest", ["", "abc", HEX.upper(), "md5:" + HEX, HEX + "0", None, 3])
def test_digests_are_checked(digest: object) -> None:
    with pytest.raises(InvalidKeyError, match="sha256 digest"):
        bundle_key(digest)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        data_key(digest)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("run", "action", "attempt", "problem"),
    [
        ("r/1", "a0", 1, "run id"),
        ("..", "a0", 1, "'..'"),
        ("r1", "", 1, "empty"),
        ("r1", "a/0", 1, "action id"),
        ("r1", "a0", 0, "attempt number"),
        ("r1", "a0", True, "attempt number"),
        ("r1", "a0", "1", "attempt number"),
    ],
)
def test_ids_are_checked(run: str, action: str, attempt: int, problem: str) -> None:
    with pytest.raises(InvalidKeyError, match=problem):
        attempt_prefix(run, action, attempt)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "is empty"),
        ("/etc/passwd", "is absolute"),
        ("a/../../etc", "'..'"),
        ("..", "'..'"),
        ("a/./b", "'.'"),
        ("a//b", "empty part"),
        ("a/", "empty part"),
        ("a\\..\\b", "backslash"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("x" * 1025, "more than 1024"),
        ("\udcff", "UTF-8"),
        ("runs/.fl-tmp-1-x", "temporary"),
    ],
)
def test_invalid_keys(key: str, problem: str) -> None:
    with pytest.raises(InvalidKeyError, match=problem) as info:
        validate_key(key)
    assert isinstance(info.value, ValueError)
    assert "accepted" in str(info.value)


def _valid(key: str) -> bool:
    """The rule, stated independently of the implementation."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    parts = key.split("/")
    return (
        0 < size <= 1024
        and "\\" not in key
        and not any(ord(c) < 32 or ord(c) == 127 for c in key)
        and all(p not in ("", ".", "..") and not p.startswith(".fl-tmp-") for p in parts)
    )


_PARTS = st.sampled_from(["", ".", "..", "a", "b.c", "..a", "a..", " ", "é", "\\", "\x00", "\n", ".fl-tmp-x", "~"])


@given(st.one_of(st.text(max_size=40), st.lists(_PARTS, max_size=6).map("/".join)))
@example("a" * 1024)
@example("a" * 1025)
@example("é" * 512)
@example("é" * 513)
def test_keys_are_valid_exactly_by_the_rule(key: str) -> None:
    expected = _valid(key)
    try:
        validate_key(key)
    except InvalidKeyError:
        accepted = False
    else:
        accepted = True
    assert accepted == expected, key
    if accepted:
        # A valid key never leaves the store's root, under either store.
        joined = posixpath.normpath(posixpath.join("/root", key))
        assert joined.startswith("/root/")
        assert FileStore("/root")._path(key).is_relative_to("/root")
        assert S3Store("b", prefix="p").url(key) == f"s3://b/p/{key}"


# --- store URLs ---------------------------------------------------------------------------------------------


def test_open_store_by_scheme(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    assert isinstance(store, FileStore)
    assert store.root == tmp_path
    assert open_store("file://localhost/data/fl").root == Path("/data/fl")  # type: ignore[attr-defined]
    s3 = open_store("s3://my-bucket/team/flytelike/", endpoint_url="http://127.0.0.1:9000")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("my-bucket", "team/flytelike", "http://127.0.0.1:9000")
    assert open_store("s3://my-bucket").url("k") == "s3://my-bucket/k"  # type: ignore[attr-defined]
    assert SCHEMES == _config._STORE_SCHEMES  # what the settings accept is what opens


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("gs://bucket/x", "the scheme 'gs' has no blob store"),
        ("/data/store", "has no scheme"),
        ("file://host/data", "names no host"),
        ("file:relative/path", "must be absolute"),
        ("s3:///prefix", "names no bucket"),
        ("s3://bu cket/x", "not a bucket name"),
        ("s3://bucket/a/../b", "prefix is not valid"),
        ("s3://bucket/x?versioning=1", "no query"),
    ],
)
def test_bad_store_urls_name_the_setting_and_the_schemes(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(url)
    assert info.value.field == "store.url"
    assert info.value.value == url
    assert problem in info.value.problem
    assert info.value.accepted == "file:///absolute/path or s3://bucket/prefix"
    with pytest.raises(ConfigError, match=r"^--bundle="):
        open_store(url, setting="--bundle")


def test_s3_options_are_checked() -> None:
    with pytest.raises(SpecError, match=r"S3Options\.part_size"):
        S3Options(part_size=1024)


# --- settings -----------------------------------------------------------------------------------------------


def test_store_settings_default_to_the_home(isolated_config: Path) -> None:
    s = load_settings()
    assert s.store == StoreSettings(url=(isolated_config / "store").as_uri(), endpoint_url=None)
    assert open_store(s.store.url).root == isolated_config / "store"  # type: ignore[attr-defined]
    assert load_settings(home=Path("/srv/fl")).store.url == "file:///srv/fl/store"


def test_store_settings_from_files_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("flytelike.toml").write_text('[store]\nurl = "s3://team-bucket/flytelike"\n')
    assert load_settings().store == StoreSettings("s3://team-bucket/flytelike")
    monkeypatch.setenv("FLYTELIKE_STORE__ENDPOINT_URL", "http://127.0.0.1:9000")
    assert load_settings().store.endpoint_url == "http://127.0.0.1:9000"
    monkeypatch.setenv("FLYTELIKE_STORE__URL", "file:///mnt/shared")
    assert load_settings().store.url == "file:///mnt/shared"
    monkeypatch.setenv("FLYTELIKE_STORE__URL", "")  # unset, as shells mean it: the file's
    assert load_settings().store.url == "s3://team-bucket/flytelike"


@pytest.mark.parametrize(
    ("variable", "value", "field", "problem"),
    [
        ("FLYTELIKE_STORE__URL", "gs://b", "store.url", "the scheme 'gs' has no blob store"),
        ("FLYTELIKE_STORE__URL", "/data", "store.url", "has no scheme"),
        ("FLYTELIKE_STORE__ENDPOINT_URL", "127.0.0.1:9000", "store.endpoint_url", "http:// or https://"),
    ],
)
def test_bad_store_settings(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == field
    assert problem in info.value.problem
    assert variable in info.value.problem  # where it was set


# --- errors and imports -------------------------------------------------------------------------------------


def test_store_errors_survive_pickling() -> None:
    errors: list[StoreError] = [
        StoreError("m", url="s3://b/k", key="k", cause="AccessDenied: no"),
        BlobNotFoundError("m", url="u", key="k"),
        InvalidKeyError("m", key="../x"),
        DigestMismatchError("m", url="u", key="k", expected="a", actual="b"),
    ]
    for error in errors:
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert (str(back), back.url, back.key, back.cause) == (str(error), error.url, error.key, error.cause)
    back = pickle.loads(pickle.dumps(errors[-1]))
    assert isinstance(back, DigestMismatchError)
    assert (back.expected, back.actual) == ("a", "b")


def test_the_storage_layer_imports_no_aws_client(tmp_path: Path) -> None:
    code = (
        "import sys, anyio\n"
        "import flytelike\n"
        "from flytelike._storage import open_store\n"
        f"store = open_store({tmp_path.as_uri()!r})\n"
        "async def main():\n"
        "    async with store:\n"
        "        await store.put('k', b'v')\n"
        "anyio.run(main)\n"
        "open_store('s3://bucket/prefix')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'aioboto3', 'aiobotocore')))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
