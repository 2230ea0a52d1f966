"""Which files a bundle holds: the project root, the standard exclusions, .gitignore and .flytelikeignore files
(nesting, negation, anchoring, directories), files above the root, virtual environments, links and special files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from flytelike._bundle import build_bundle, explain, find_root, select_files
from flytelike.errors import BundleError

HAS_GIT = shutil.which("git") is not None


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def paths(root: Path) -> list[str]:
    return [f.path for f in select_files(root)]


# --- project root --------------------------------------------------------------------------------------------------


def test_root_is_the_nearest_directory_with_pyproject_or_git(tmp_path: Path) -> None:
    make_tree(tmp_path, {"repo/.git/HEAD": "", "repo/proj/pyproject.toml": "", "repo/proj/pkg/tasks.py": ""})
    assert find_root(tmp_path / "repo/proj/pkg/tasks.py") == (tmp_path / "repo/proj").resolve()
    make_tree(tmp_path, {"repo/other/tasks.py": ""})
    assert find_root(tmp_path / "repo/other/tasks.py") == (tmp_path / "repo").resolve()


def test_a_git_file_marks_a_root_too(tmp_path: Path) -> None:
    # Worktrees and submodules have a `.git` file instead of a directory.
    make_tree(tmp_path, {"wt/.git": "gitdir: /elsewhere\n", "wt/a/b/tasks.py": ""})
    assert find_root(tmp_path / "wt/a/b/tasks.py") == (tmp_path / "wt").resolve()
    assert ".git" not in paths(tmp_path / "wt")


def test_without_markers_the_root_is_the_files_directory(tmp_path: Path) -> None:
    # tmp_path lies under no pyproject.toml or .git on this machine (checked, so the test says what it tests).
    here = (tmp_path / "loose").resolve()
    assert not any((d / m).exists() for d in (here, *here.parents) for m in ("pyproject.toml", ".git"))
    make_tree(tmp_path, {"loose/tasks.py": ""})
    assert find_root(tmp_path / "loose/tasks.py") == here


def test_find_root_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        find_root(tmp_path / "nope.py")


# --- standard exclusions -------------------------------------------------------------------------------------------


def test_standard_exclusions(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "pyproject.toml": "",
            "pkg/__init__.py": "",
            "pkg/__pycache__/x.cpython-311.pyc": "",
            "pkg/mod.pyc": "",
            ".venv/lib/site.py": "",
            "venv/lib/site.py": "",
            "myenv/pyvenv.cfg": "",
            "myenv/lib/site.py": "",
            "condaenv/conda-meta/history": "",
            ".mypy_cache/x": "",
            ".pytest_cache/x": "",
            ".ruff_cache/x": "",
            ".tox/x": "",
            ".nox/x": "",
            "build/lib/x.py": "",
            "dist/x.whl": "",
            "pkg.egg-info/PKG-INFO": "",
            ".DS_Store": "",
            "web/node_modules/x.js": "",
            "web/app.js": "",
            ".env": "SECRET=1",
            ".hg/store": "",
            ".flytelike/manifest.json": "",
            "pkg/build/helpers.py": "",  # /build/ is anchored at the root: a package named build stays
            "pkg/.flytelike/kept.txt": "",  # reserved at the root only
        },
    )
    assert paths(tmp_path) == [
        "pkg/.flytelike/kept.txt",
        "pkg/__init__.py",
        "pkg/build/helpers.py",
        "pyproject.toml",
        "web/app.js",
    ]


def test_a_flytelikeignore_negation_re_includes_a_standard_exclusion(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pyproject.toml": "", "build/gen.py": "", ".flytelikeignore": "!/build/\n"})
    assert "build/gen.py" in paths(tmp_path)


def test_git_and_the_reserved_directory_can_never_be_re_included(tmp_path: Path) -> None:
    make_tree(tmp_path, {".git/HEAD": "", ".flytelike/x": "", ".flytelikeignore": "!.git/\n!.flytelike/\n"})
    assert paths(tmp_path) == [".flytelikeignore"]


# --- .gitignore and .flytelikeignore -------------------------------------------------------------------------------

NESTED = {
    ".gitignore": "# comment\n\n*.log\n!keep.log\n/data/\nsecret*\n!secret_ok.txt\ntmp/\n",
    "app.log": "",
    "keep.log": "",
    "data/big.csv": "",
    "src/data/small.csv": "",  # /data/ is anchored: only the root's data/
    "secret.txt": "",
    "secret_ok.txt": "",
    "src/tmp/x": "",
    "src/tmp.py": "",  # tmp/ matches directories only
    "src/.gitignore": "*.csv\n!keep.log\ngenerated/*\n!generated/keep.py\nkeep.log\n",
    "src/keep.log": "",  # the last matching line of the deepest file decides: excluded again
    "src/generated/a.py": "",
    "src/generated/keep.py": "",
    "src/lib/deep/x.log": "",
    "src/lib/deep/.gitignore": "!*.log\n",  # a deeper file re-includes
    "docs/a b.md": "",
    "docs/.gitignore": "a\\ b.md\n",  # an escaped space
    "main.py": "",
}


def test_nested_gitignores_with_negations_anchors_and_directories(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pyproject.toml": "", **NESTED})
    assert paths(tmp_path) == [
        ".gitignore",
        "docs/.gitignore",
        "keep.log",
        "main.py",
        "pyproject.toml",
        "secret_ok.txt",
        "src/.gitignore",
        "src/generated/keep.py",
        "src/lib/deep/.gitignore",
        "src/lib/deep/x.log",
        "src/tmp.py",
    ]


def git_view(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(root.parent), "XDG_CONFIG_HOME": str(root.parent)},
    )
    return sorted(out.stdout.splitlines())


@pytest.mark.skipif(not HAS_GIT, reason="git is not installed")
def test_the_selection_agrees_with_git(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo", {"pyproject.toml": "", **NESTED})
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    assert paths(root) == git_view(root)


def test_flytelikeignore_excludes_and_re_includes_git_ignored_files(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "pyproject.toml": "",
            ".gitignore": "assets/\n*.bin\n",
            ".flytelikeignore": "notebooks/\n!model.bin\n",
            "notebooks/a.ipynb": "",
            "model.bin": "",
            "other.bin": "",
            "assets/x.png": "",  # the directory is excluded, so nothing below it can come back
            "pkg/.flytelikeignore": "fixtures/\n",
            "pkg/fixtures/f.json": "",
            "pkg/a.py": "",
        },
    )
    assert paths(tmp_path) == [
        ".flytelikeignore",
        ".gitignore",
        "model.bin",
        "pkg/.flytelikeignore",
        "pkg/a.py",
        "pyproject.toml",
    ]


def test_gitignores_above_the_root_apply_inside_a_bigger_work_tree(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "mono/.git/HEAD": "",
            "mono/.gitignore": "*.tmp\n/proj/local/\n",
            "mono/proj/pyproject.toml": "",
            "mono/proj/a.py": "",
            "mono/proj/a.tmp": "",
            "mono/proj/local/x.py": "",
            "mono/proj/.gitignore": "!keep.tmp\n",
            "mono/proj/keep.tmp": "",
        },
    )
    assert paths(tmp_path / "mono/proj") == [".gitignore", "a.py", "keep.tmp", "pyproject.toml"]
    rule = explain(tmp_path / "mono/proj", "a.tmp")
    assert rule is not None
    assert (rule.source, rule.line, rule.pattern) == ("../.gitignore", 1, "*.tmp")


def test_gitignores_above_a_root_outside_any_work_tree_are_not_read(tmp_path: Path) -> None:
    make_tree(tmp_path, {"outer/.gitignore": "*.py\n", "outer/proj/pyproject.toml": "", "outer/proj/a.py": ""})
    assert paths(tmp_path / "outer/proj") == ["a.py", "pyproject.toml"]


def test_explain_names_the_rule(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pyproject.toml": "", **NESTED})
    rule = explain(tmp_path, "src/generated/a.py")
    assert str(rule) == "src/.gitignore:3: generated/*"
    assert str(explain(tmp_path, "data/big.csv")) == ".gitignore:5: /data/"
    assert str(explain(tmp_path, "pkg/__pycache__/m.pyc")) == "<standard excludes>:1: __pycache__/"
    assert explain(tmp_path, "main.py") is None


def test_a_task_file_that_its_own_bundle_would_leave_out_is_an_error(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pyproject.toml": "", ".flytelikeignore": "scratch/\n", "scratch/tasks.py": ""})
    with pytest.raises(BundleError, match=r"scratch/tasks.py would not be in its own bundle.*\.flytelikeignore:1") as e:
        build_bundle(tmp_path / "scratch/tasks.py")
    assert e.value.path == "scratch/tasks.py"


# --- links and special files ---------------------------------------------------------------------------------------


def test_links_inside_the_root_are_kept_as_relative_links(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": "", "pkg/real.py": "", "conf/a.toml": ""})
    (root / "pkg/alias.py").symlink_to("real.py")
    (root / "pkg/abs.py").symlink_to(root / "pkg/real.py")  # absolute, but inside
    (root / "confdir").symlink_to("conf")  # a link to a directory is a link, not descended into
    (root / "dangling").symlink_to("missing.txt")
    links = {f.path: f.link for f in select_files(root) if f.link is not None}
    assert links == {"confdir": "conf", "dangling": "missing.txt", "pkg/abs.py": "real.py", "pkg/alias.py": "real.py"}


def test_a_link_leaving_the_root_is_an_error_naming_it(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": "", "a.py": ""})
    make_tree(tmp_path, {"outside/data.csv": ""})
    (root / "data").symlink_to(tmp_path / "outside")
    with pytest.raises(
        BundleError, match=r"cannot bundle data: it is a symbolic link to .*outside.*flytelikeignore"
    ) as e:
        select_files(root)
    assert e.value.path == "data"
    (root / ".flytelikeignore").write_text("/data\n")  # ignored, it is no longer a problem
    assert paths(root) == [".flytelikeignore", "a.py", "pyproject.toml"]


def test_a_relative_link_that_climbs_out_and_back_is_stored_by_where_it_lands(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": "", "a.py": ""})
    (root / "b.py").symlink_to("../p/a.py")  # would break (or escape) once extracted elsewhere
    assert {f.path: f.link for f in select_files(root)}["b.py"] == "a.py"


def test_a_fifo_is_an_error_unless_ignored(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": ""})
    os.mkfifo(root / "pipe")
    with pytest.raises(BundleError, match="cannot bundle pipe: it is not a regular file"):
        select_files(root)
    (root / ".flytelikeignore").write_text("pipe\n")
    assert paths(root) == [".flytelikeignore", "pyproject.toml"]


def test_executable_bit_is_seen(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"pyproject.toml": "", "run.sh": "#!/bin/sh\n"})
    (root / "run.sh").chmod(0o750)
    assert {f.path: f.executable for f in select_files(root)} == {"pyproject.toml": False, "run.sh": True}


GNARLY = {
    ".gitignore": (
        "**/cache/\nlogs/**/*.txt\n!logs/keep/**\n\\#literal\n*.o\n!lib.o\nnested/*\n!nested/in/\n"
        "space \n!\nbad\\\n"  # a trailing space, then two lines git cannot parse and skips
    ),
    "x/y/cache/z": "",
    "cache.py": "",
    "logs/a.txt": "",
    "logs/deep/b.txt": "",
    "logs/keep/c.txt": "",
    "logs/d.md": "",
    "#literal": "",
    "a.o": "",
    "lib.o": "",
    "nested/out/x": "",
    "nested/in/y": "",
    "nested/file": "",
    "space": "",
    "bad": "",
    "sub/.gitignore": "/only_here\n!/a.o\n",
    "sub/only_here": "",
    "sub/deeper/only_here": "",
    "sub/a.o": "",
}


@pytest.mark.skipif(not HAS_GIT, reason="git is not installed")
def test_more_gitignore_syntax_agrees_with_git(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo", GNARLY)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    assert paths(root) == git_view(root)
    assert "sub/a.o" in paths(root)
    assert "sub/deeper/only_here" in paths(root)


def test_explain_a_link_explains_the_link(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"pyproject.toml": "", "real/a.py": "", ".flytelikeignore": "shortcut\n"})
    (root / "shortcut").symlink_to("real")
    assert str(explain(root, root / "shortcut")) == ".flytelikeignore:1: shortcut"
    assert explain(root, root / "real/a.py") is None
