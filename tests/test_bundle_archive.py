"""Manifest, digest and archive: what the digest depends on, reproducibility across clones, the archive's headers,
size limits, and the hash cache."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import flytelike._bundle._hashcache as hashcache
from flytelike._bundle import MANIFEST_PATH, Bundle, Manifest, SizeLimits, build_bundle
from flytelike._version import __version__
from flytelike.errors import BundleError, BundleIntegrityError, BundleSizeWarning, BundleTooLargeError

HAS_GIT = shutil.which("git") is not None
OLD = 1_600_000_000  # an mtime well in the past, so the hash cache trusts the entry


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def archive_of(bundle: Bundle) -> bytes:
    out = io.BytesIO()
    bundle.write(out)
    return out.getvalue()


PROJECT = {
    "pyproject.toml": "[project]\nname = 'demo'\n",
    ".gitignore": "*.log\nout/\n",
    "pkg/__init__.py": "",
    "pkg/tasks.py": "async def main() -> int:\n    return 1\n",
    "pkg/data/table.csv": "a,b\n1,2\n",
    "scripts/run.sh": "#!/bin/sh\necho hi\n",
    "ünïcode/naïve.txt": "é\n",
    "deep/" + "/".join(["d" * 40] * 4) + "/long_name.py": "x = 1\n",  # a path past ustar's 100 characters
}


# --- manifest and digest -------------------------------------------------------------------------------------------


def test_manifest_lists_files_with_sha256_size_mode_and_the_versions(tmp_path: Path) -> None:
    root = make_tree(tmp_path, PROJECT)
    (root / "scripts/run.sh").chmod(0o775)
    (root / "pkg/link.py").symlink_to("tasks.py")
    bundle = build_bundle(root / "pkg/tasks.py")
    document = json.loads(bundle.manifest.to_bytes())
    assert document["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert document["flytelike"] == __version__
    assert document["format"] == 1
    files = document["files"]
    assert list(files) == sorted(files)
    assert files["scripts/run.sh"]["mode"] == "0755"
    assert files["pkg/tasks.py"] == {
        "mode": "0644",
        "sha256": hashlib.sha256(PROJECT["pkg/tasks.py"].encode()).hexdigest(),
        "size": len(PROJECT["pkg/tasks.py"]),
    }
    assert files["pkg/link.py"] == {"link": "tasks.py"}
    assert bundle.digest == "sha256:" + hashlib.sha256(bundle.manifest.to_bytes()).hexdigest()
    assert Manifest.from_bytes(bundle.manifest.to_bytes()) == bundle.manifest


def test_digest_ignores_mtimes_and_permission_bits_other_than_execute(tmp_path: Path) -> None:
    root = make_tree(tmp_path, PROJECT)
    before = build_bundle(root).digest
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (OLD, OLD))
    (root / "pkg/tasks.py").chmod(0o664)
    assert build_bundle(root).digest == before


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "pkg/tasks.py").write_text("async def main() -> int:\n    return 2\n"),
        lambda r: (r / "pkg/tasks.py").chmod(0o755),
        lambda r: (r / "pkg/tasks.py").rename(r / "pkg/tasks2.py"),
        lambda r: (r / "pkg/new.py").write_text(""),
        lambda r: (r / "pkg/alias.py").symlink_to("tasks.py"),
    ],
    ids=["content", "execute-bit", "rename", "new-file", "new-link"],
)
def test_digest_follows_content_names_and_modes(tmp_path: Path, change: object) -> None:
    root = make_tree(tmp_path, PROJECT)
    before = build_bundle(root).digest
    assert callable(change)
    change(root)
    assert build_bundle(root).digest != before


def test_digest_depends_on_the_python_version(tmp_path: Path) -> None:
    root = make_tree(tmp_path, PROJECT)
    assert build_bundle(root, python="3.11").digest != build_bundle(root, python="3.12").digest


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"format": 2}', "not a format-1 manifest"),
        (b'{"format": 1, "files": [], "python": "3.11", "flytelike": "0"}', "lacks files"),
        (b'{"format":1,"files":{"a":{"mode":"0644","sha256":"xy","size":1}},"python":"3","flytelike":"0"}', "sha256"),
        (
            b'{"format":1,"files":{"a":{"mode":"4755","sha256":"'
            + b"0" * 64
            + b'","size":1}},"python":"3","flytelike":"0"}',
            "mode",
        ),
        (
            b'{"format":1,"files":{"a":{"mode":"0644","sha256":"'
            + b"0" * 64
            + b'","size":-1}},"python":"3","flytelike":"0"}',
            "size",
        ),
        (b'{"format":1,"files":{"a":{"link":"b","size":3}},"python":"3","flytelike":"0"}', "link entry"),
    ],
)
def test_a_malformed_manifest_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(BundleIntegrityError, match=reason):
        Manifest.from_bytes(data)


# --- reproducible archives -----------------------------------------------------------------------------------------


def git(*args: str, cwd: Path) -> None:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
        "XDG_CONFIG_HOME": str(cwd),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


@pytest.mark.skipif(not HAS_GIT, reason="git is not installed")
def test_two_clones_of_one_commit_give_one_digest_and_identical_archives(tmp_path: Path) -> None:
    origin = make_tree(tmp_path / "origin", PROJECT)
    (origin / "scripts/run.sh").chmod(0o755)
    (origin / "pkg/alias.py").symlink_to("tasks.py")
    git("init", "-q", ".", cwd=origin)
    git("add", "-A", cwd=origin)
    git("commit", "-q", "-m", "init", cwd=origin)
    git("clone", "-q", str(origin), str(tmp_path / "one"), cwd=tmp_path)
    old = os.umask(0o002)  # the second clone gets group-writable files: not part of the digest
    try:
        git("clone", "-q", str(origin), str(tmp_path / "elsewhere" / "two"), cwd=tmp_path)
    finally:
        os.umask(old)
    one, two = tmp_path / "one", tmp_path / "elsewhere" / "two"
    for i, path in enumerate(sorted(p for p in two.rglob("*") if p.is_file() and ".git" not in p.parts)):
        os.utime(path, (OLD + i, OLD + i))
    make_tree(two, {"run.log": "ignored", "out/result.txt": "ignored", "pkg/__pycache__/tasks.cpython-311.pyc": ""})
    first, second = build_bundle(one / "pkg/tasks.py"), build_bundle(two / "pkg/tasks.py")
    assert first.root != second.root
    assert first.digest == second.digest
    assert archive_of(first) == archive_of(second)


def test_archive_headers_are_normalized(tmp_path: Path) -> None:
    root = make_tree(tmp_path, PROJECT)
    (root / "scripts/run.sh").chmod(0o4775)  # setuid is not carried: modes are 0644 or 0755
    (root / "pkg/alias.py").symlink_to("tasks.py")
    bundle = build_bundle(root)
    data = archive_of(bundle)
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] & 0x08 == 0, "no file name in the gzip header"
    assert data[4:8] == b"\0\0\0\0", "gzip mtime 0"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == MANIFEST_PATH
    assert names[1:] == sorted(names[1:]) == [e.path for e in bundle.manifest.entries]
    assert not [m for m in members if m.isdir()]
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 0), m.name
        assert m.mode in (0o644, 0o755, 0o777), m.name
    modes = {m.name: (m.mode, m.type) for m in members}
    assert modes["scripts/run.sh"] == (0o755, tarfile.REGTYPE)
    assert modes["pkg/tasks.py"] == (0o644, tarfile.REGTYPE)
    assert modes["pkg/alias.py"] == (0o777, tarfile.SYMTYPE)


def test_write_to_is_atomic_and_writes_the_same_bytes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", PROJECT)
    bundle = build_bundle(root)
    target = bundle.write_to(tmp_path / "out" / "b.tar.gz")
    assert target.read_bytes() == archive_of(bundle)
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.tar.gz"]


def test_a_file_changed_after_hashing_is_refused_by_the_writer(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", PROJECT)
    bundle = build_bundle(root)
    (root / "pkg/tasks.py").write_text("async def main() -> int:\n    return 3\n")  # same size, other bytes
    with pytest.raises(BundleError, match=r"cannot bundle pkg/tasks\.py: it changed while it was being bundled") as e:
        bundle.write(io.BytesIO())
    assert e.value.path == "pkg/tasks.py"
    (root / "pkg/tasks.py").write_text("longer now")
    with pytest.raises(BundleError, match=r"pkg/tasks\.py: it changed"):
        bundle.write(io.BytesIO())
    (root / "pkg/tasks.py").unlink()
    with pytest.raises(BundleError, match=r"pkg/tasks\.py: it changed"):
        bundle.write_to(tmp_path / "b.tar.gz")
    assert not list(tmp_path.glob("*.tar.gz*")), "no partial archive left"


# --- size limits ---------------------------------------------------------------------------------------------------


def test_size_warning_names_the_largest_files(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"pyproject.toml": "", "a.py": "x" * 3000, "b.bin": "y" * 5000, "c.py": "z" * 10})
    with pytest.warns(BundleSizeWarning, match=r"largest files: b\.bin \(4\.9 KiB\), a\.py \(2\.9 KiB\)") as record:
        build_bundle(root, limits=SizeLimits(warn=4000, fail=100_000))
    warning = record[0].message
    assert isinstance(warning, BundleSizeWarning)
    assert warning.size == 8010
    assert warning.largest[:2] == (("b.bin", 5000), ("a.py", 3000))


def test_size_limit_fails_before_hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path, {"pyproject.toml": "", "a.py": "x" * 3000, "big.parquet": "y" * 50_000})
    hashed: list[str] = []
    monkeypatch.setattr(hashcache, "hash_file", lambda full: hashed.append(full) or "0" * 64)
    with pytest.raises(BundleTooLargeError, match=r"more than the limit of 9\.8 KiB; largest files: big\.parquet") as e:
        build_bundle(root, limits=SizeLimits(warn=1000, fail=10_000))
    assert (e.value.size, e.value.limit) == (53_000, 10_000)
    assert e.value.largest[0] == ("big.parquet", 50_000)
    assert hashed == []


def test_default_limits_are_50_and_500_mib() -> None:
    assert SizeLimits() == SizeLimits(warn=50 << 20, fail=500 << 20)


# --- hash cache ----------------------------------------------------------------------------------------------------


def test_hash_cache_rehashes_only_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": "", "a.py": "a", "b.py": "b", "c.py": "c"})
    for path in root.iterdir():
        os.utime(path, (OLD, OLD))
    hashed: list[str] = []
    real = hashcache.hash_file
    monkeypatch.setattr(hashcache, "hash_file", lambda full: hashed.append(Path(full).name) or real(full))
    cache = tmp_path / "cache"
    first = build_bundle(root, hash_cache=cache)
    assert sorted(hashed) == ["a.py", "b.py", "c.py", "pyproject.toml"]
    hashed.clear()
    assert build_bundle(root, hash_cache=cache).digest == first.digest
    assert hashed == []
    (root / "b.py").write_text("B")  # same size, new mtime: rehashed (and, being fresh, not cached yet)
    changed = build_bundle(root, hash_cache=cache)
    assert hashed == ["b.py"]
    assert changed.digest != first.digest
    hashed.clear()
    build_bundle(root, hash_cache=cache)
    assert hashed == ["b.py"], "a file modified just now is hashed again until it is old enough to trust"
    assert build_bundle(root).digest == changed.digest  # and the cache agrees with hashing everything


def test_a_damaged_cache_file_is_ignored(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": "", "a.py": "a"})
    cache = tmp_path / "cache"
    digest = build_bundle(root).digest
    cache.mkdir()
    location = hashcache.HashCache.location(cache, root.resolve())
    for damaged in ["{not json", '{"format": 1, "files": {"a.py": {"x": 1}, "pyproject.toml": [0, 0]}}', "[]"]:
        location.write_text(damaged)
        assert build_bundle(root, hash_cache=cache).digest == digest
