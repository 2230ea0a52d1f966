"""``flytelike bundle FILE [--list] [-o PATH]``: what it prints and writes, its errors, and that ``--help`` stays
free of the bundle code."""

from __future__ import annotations

import functools
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import flytelike._cli._bundle as _bundle_cli
from flytelike._bundle import SizeLimits, build_bundle
from flytelike._cli import cli

ROOT = Path(__file__).resolve().parents[1]


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def project(tmp_path: Path, isolated_config: Path) -> Path:
    root = make_tree(
        tmp_path / "proj",
        {
            "pyproject.toml": "[project]\nname = 'demo'\n",
            ".gitignore": "*.log\n",
            "pkg/tasks.py": "async def main() -> int:\n    return 1\n",
            "pkg/debug.log": "left out",
            "data/table.csv": "a,b\n" * 1000,
        },
    )
    (root / "pkg/alias.py").symlink_to("tasks.py")
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_prints_root_digest_count_and_size(project: Path) -> None:
    code, out, err = invoke("bundle", str(project / "pkg/tasks.py"))
    assert (code, err) == (0, "")
    digest = build_bundle(project / "pkg/tasks.py").digest
    assert out.splitlines() == [f"root    {project.resolve()}", f"digest  {digest}", "files   5 (4.0 KiB)"]


def test_list_prints_every_file_with_its_size(project: Path) -> None:
    code, out, _ = invoke("bundle", str(project / "pkg/tasks.py"), "--list")
    assert code == 0
    assert out.splitlines()[3:] == [
        "       6 B  .gitignore",
        "   3.9 KiB  data/table.csv",
        "      link  pkg/alias.py -> tasks.py",
        "      38 B  pkg/tasks.py",
        "      24 B  pyproject.toml",
    ]


def test_output_writes_the_archive(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "bundle.tar.gz"
    code, out, err = invoke("bundle", str(project / "pkg/tasks.py"), "-o", str(target))
    assert (code, err) == (0, "")
    assert out.splitlines()[-1].startswith(f"archive {target} (")
    with tarfile.open(target) as tar:
        names = tar.getnames()
    assert names == [
        ".flytelike/manifest.json",
        ".gitignore",
        "data/table.csv",
        "pkg/alias.py",
        "pkg/tasks.py",
        "pyproject.toml",
    ]
    again = io.BytesIO()
    build_bundle(project).write(again)
    assert target.read_bytes() == again.getvalue()


def test_an_archive_written_inside_the_project_is_pointed_out(project: Path) -> None:
    code, _, err = invoke("bundle", str(project / "pkg/tasks.py"), "-o", str(project / "b.tar.gz"))
    assert code == 0
    assert (
        "b.tar.gz is inside the project and would be part of its next bundle; add b.tar.gz to .flytelikeignore" in err
    )
    (project / ".flytelikeignore").write_text("*.tar.gz\n")
    assert invoke("bundle", str(project / "pkg/tasks.py"), "-o", str(project / "b.tar.gz"))[2] == ""


def test_a_missing_file_exits_2(project: Path) -> None:
    code, _, err = invoke("bundle", str(project / "nope.py"))
    assert code == 2
    assert "nope.py' does not exist" in err


def test_a_project_that_cannot_be_bundled_exits_2_naming_the_file(project: Path, tmp_path: Path) -> None:
    (project / "escape").symlink_to(tmp_path)
    code, out, err = invoke("bundle", str(project / "pkg/tasks.py"))
    assert (code, out) == (2, "")
    assert err.startswith("Error: cannot bundle escape: it is a symbolic link to ")


def test_an_ignored_task_file_exits_2_naming_the_rule(project: Path) -> None:
    make_tree(project, {"scratch.log": ""})
    code, _, err = invoke("bundle", str(project / "scratch.log"))
    assert code == 2
    assert (
        "Error: the task file scratch.log would not be in its own bundle: it is excluded by .gitignore:1: *.log" in err
    )


def test_size_warning_is_printed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bundle_cli, "build_bundle", functools.partial(build_bundle, limits=SizeLimits(warn=1000)))
    code, _, err = invoke("bundle", str(project / "pkg/tasks.py"))
    assert code == 0
    assert err.startswith(
        "Warning: the bundle is 4.0 KiB (warning above 1000 B); largest files: data/table.csv (3.9 KiB)"
    )


def test_file_hashes_are_cached_under_flytelike_home(project: Path, isolated_config: Path) -> None:
    for path in project.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    assert invoke("bundle", str(project))[0] == 0
    assert list((isolated_config / "cache" / "bundles").glob("*.json"))


def test_help_does_not_load_the_bundle_code(isolated_config: Path) -> None:
    code = (
        "import sys\n"
        "sys.argv = ['flytelike', '--help']\n"
        "from flytelike._cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('flytelike._bundle', 'pathspec', 'tarfile'))))\n"
    )
    env = {**os.environ, "FLYTELIKE_HOME": str(isolated_config), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.splitlines()[-1] == "[]"
    assert "bundle" in out.stdout
