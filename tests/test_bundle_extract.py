"""Safe extraction: a bundle comes back as it was; crafted archives are refused, naming the member and why, and
leave nothing behind."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from flytelike._bundle import MANIFEST_PATH, build_bundle, extract_bundle
from flytelike.errors import BundleIntegrityError


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def leftovers(directory: Path) -> list[str]:
    """What an extraction into ``directory / "out"`` left there (the destination or its temporary sibling)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(("out", ".out")))


def test_round_trip_restores_files_modes_and_links(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path / "p", {"pyproject.toml": "", "pkg/tasks.py": "x = 1\n", "run.sh": "#!/bin/sh\n", "e/m.txt": "é"}
    )
    (root / "run.sh").chmod(0o755)
    (root / "pkg/alias.py").symlink_to("tasks.py")
    (root / "top").symlink_to("pkg")
    bundle = build_bundle(root)
    archive = bundle.write_to(tmp_path / "b.tar.gz")
    manifest = extract_bundle(archive, tmp_path / "out" / "x", digest=bundle.digest)
    out = tmp_path / "out" / "x"
    assert manifest == bundle.manifest
    assert (out / "pkg/tasks.py").read_text() == "x = 1\n"
    assert (out / "e/m.txt").read_text() == "é"
    assert stat.S_IMODE((out / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "pkg/tasks.py").stat().st_mode) == 0o644
    assert os.readlink(out / "pkg/alias.py") == "tasks.py"
    assert (out / "top/tasks.py").read_text() == "x = 1\n"
    assert not (out / ".flytelike").exists(), "the manifest is returned, not written"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x"]


class OneWayStream(io.RawIOBase):
    """A download stream: read once, no seeking."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 1000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_extracts_from_a_stream_that_cannot_seek(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": "", "a.py": "a" * 100_000})
    bundle = build_bundle(root)
    data = io.BytesIO()
    bundle.write(data)
    extract_bundle(OneWayStream(data.getvalue()), tmp_path / "out", digest=bundle.digest)
    assert (tmp_path / "out/a.py").read_text() == "a" * 100_000


def test_an_existing_destination_is_not_touched(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": ""})
    archive = build_bundle(root).write_to(tmp_path / "b.tar.gz")
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError):
        extract_bundle(archive, tmp_path / "out")


def test_a_digest_mismatch_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": ""})
    archive = build_bundle(root).write_to(tmp_path / "b.tar.gz")
    with pytest.raises(BundleIntegrityError, match="bundle digest mismatch: expected sha256:0000"):
        extract_bundle(archive, tmp_path / "out", digest="sha256:" + "0" * 64)
    assert leftovers(tmp_path) == []


# --- crafted archives ----------------------------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def info(
    name: str, *, data: bytes = b"", mode: int = 0o644, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = len(data) if kind == tarfile.REGTYPE else 0
    member.mode = mode
    member.type = kind
    member.linkname = link
    return member


def craft(
    members: list[tuple[tarfile.TarInfo, bytes]],
    manifest: dict[str, dict[str, object]] | None = None,
    *,
    manifest_first: bool = True,
) -> bytes:
    """An archive of ``members``; the manifest lists them as they are unless ``manifest`` is given."""
    if manifest is None:
        manifest = {}
        for member, data in members:
            if member.issym() or member.islnk():
                manifest[member.name] = {"link": member.linkname}
            else:
                manifest[member.name] = {"mode": f"{member.mode & 0o777:04o}", "sha256": sha(data), "size": len(data)}
    document = {"files": manifest, "flytelike": "0.1.0", "format": 1, "python": "3.11"}
    manifest_bytes = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    entries = [(info(MANIFEST_PATH, data=manifest_bytes), manifest_bytes), *members]
    if not manifest_first:
        entries.reverse()
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member, data in entries:
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return out.getvalue()


A = b"print('a')\n"
GOOD = (info("a.py", data=A), A)

CRAFTED = {
    "absolute path": ([(info("/etc/evil", data=A), A)], None, "'/etc/evil': absolute path"),
    "dot-dot": ([(info("../evil.py", data=A), A)], None, "'../evil.py': '..' in its path"),
    "dot-dot inside": ([(info("pkg/../../evil.py", data=A), A)], None, "'..' in its path"),
    "escaping symlink": (
        [(info("evil", kind=tarfile.SYMTYPE, link="../../etc/passwd"), b"")],
        None,
        "'evil': link to '../../etc/passwd' leaves the bundle",
    ),
    "escaping symlink from a subdirectory": (
        [(info("pkg/evil", kind=tarfile.SYMTYPE, link="../.."), b"")],
        None,
        "'pkg/evil': link to '../..' leaves the bundle",
    ),
    "absolute symlink": (
        [(info("evil", kind=tarfile.SYMTYPE, link="/etc/passwd"), b"")],
        None,
        "link to '/etc/passwd' leaves the bundle",
    ),
    "hard link": ([GOOD, (info("hard", kind=tarfile.LNKTYPE, link="a.py"), b"")], None, "'hard': hard link"),
    "character device": ([(info("dev", kind=tarfile.CHRTYPE), b"")], None, "'dev': device or fifo"),
    "fifo": ([(info("fifo", kind=tarfile.FIFOTYPE), b"")], None, "'fifo': device or fifo"),
    "setuid": ([(info("su", data=A, mode=0o4755), A)], None, r"'su': setuid, setgid or sticky bit \(mode 4755\)"),
    "setgid": ([(info("sg", data=A, mode=0o2755), A)], None, "'sg': setuid, setgid or sticky bit"),
    "content differs": (
        [GOOD],
        {"a.py": {"mode": "0644", "sha256": sha(b"other\n" + b"x" * 5), "size": len(A)}},
        "'a.py': sha256",
    ),
    "size differs": (
        [GOOD],
        {"a.py": {"mode": "0644", "sha256": sha(A), "size": 3}},
        "'a.py': 11 bytes where the manifest says 3",
    ),
    "mode differs": ([GOOD], {"a.py": {"mode": "0755", "sha256": sha(A), "size": len(A)}}, "'a.py': mode 0644 where"),
    "not listed": (
        [GOOD, (info("extra.py", data=A), A)],
        {"a.py": {"mode": "0644", "sha256": sha(A), "size": len(A)}},
        "'extra.py': not listed",
    ),
    "missing": (
        [GOOD],
        {
            "a.py": {"mode": "0644", "sha256": sha(A), "size": len(A)},
            "b.py": {"mode": "0644", "sha256": sha(A), "size": 1},
        },
        "'b.py': listed in the manifest but not in the archive",
    ),
    "twice": ([GOOD, GOOD], None, "'a.py': it appears twice"),
    "below a link": (
        [(info("pkg", kind=tarfile.SYMTYPE, link="real"), b""), (info("pkg/x.py", data=A), A)],
        None,
        "'pkg/x.py': it lies below the file or link pkg",
    ),
    "below a file": (
        [(info("pkg", data=A), A), (info("pkg/x.py", data=A), A)],
        None,
        "'pkg/x.py': it lies below the file or link pkg",
    ),
    "link where a file is listed": (
        [(info("a.py", kind=tarfile.SYMTYPE, link="b"), b"")],
        {"a.py": {"mode": "0644", "sha256": sha(A), "size": len(A)}},
        "'a.py': a link where the manifest lists a file",
    ),
    "directory member": ([(info("pkg", kind=tarfile.DIRTYPE, mode=0o755), b"")], {}, "'pkg': not listed"),
    "empty component": ([(info("pkg//a.py", data=A), A)], None, "empty or '.' component"),
}


@pytest.mark.parametrize("case", list(CRAFTED), ids=list(CRAFTED))
def test_crafted_archives_are_refused_naming_the_member(tmp_path: Path, case: str) -> None:
    members, manifest, message = CRAFTED[case]
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(craft(members, manifest))
    with pytest.raises(BundleIntegrityError, match=message):
        extract_bundle(archive, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_a_good_crafted_archive_extracts(tmp_path: Path) -> None:
    # The same helper, used for the refusals above, makes archives that are accepted when nothing is wrong.
    archive = tmp_path / "good.tar.gz"
    archive.write_bytes(craft([GOOD, (info("b", kind=tarfile.SYMTYPE, link="a.py"), b"")]))
    extract_bundle(archive, tmp_path / "out")
    assert (tmp_path / "out/b").read_bytes() == A


def test_the_manifest_must_come_first(tmp_path: Path) -> None:
    archive = tmp_path / "late.tar.gz"
    archive.write_bytes(craft([GOOD], manifest_first=False))
    with pytest.raises(BundleIntegrityError, match=r"'a\.py': the first member is not the manifest"):
        extract_bundle(archive, tmp_path / "out")


@pytest.mark.parametrize(
    "data",
    [b"not an archive at all", gzip.compress(b"gzip but not tar" * 100), b""],
    ids=["garbage", "gzip-not-tar", "empty"],
)
def test_unreadable_archives_are_refused(tmp_path: Path, data: bytes) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(data)
    with pytest.raises(BundleIntegrityError, match="refused bundle"):
        extract_bundle(archive, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_a_truncated_archive_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": "", "a.bin": os.urandom(200_000).hex()})
    data = io.BytesIO()
    build_bundle(root).write(data)
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(BundleIntegrityError, match="refused bundle"):
        extract_bundle(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extracted_directory_is_readable_by_others(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": ""})
    archive = build_bundle(root).write_to(tmp_path / "b.tar.gz")
    extract_bundle(archive, tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_a_manifest_listing_more_than_the_size_limit_is_refused_before_writing(tmp_path: Path) -> None:
    big = b"x" * 5000
    archive = tmp_path / "big.tar.gz"
    archive.write_bytes(craft([(info("a.bin", data=big), big)]))
    with pytest.raises(BundleIntegrityError, match="lists 5000 bytes, more than 4096"):
        extract_bundle(archive, tmp_path / "out", max_size=4096)
    assert leftovers(tmp_path) == []
    extract_bundle(archive, tmp_path / "out")  # the default limit is the build limit, 500 MiB
