"""Start-up: what each entry point imports. Time lives in benchmarks/bench_startup.py; these tests keep the modules
that cost it (pydantic, the runtime) out of the paths that do not need them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What a run that uses no pydantic model must not load: pydantic costs more than the rest of a run's imports.
PYDANTIC = ["pydantic", "pydantic_core", "pydantic_settings"]
# What `flytelike --help` must not load: the runtime, and the SDK model it does not use either.
RUNTIME = [
    "anyio",
    "asyncio",
    "google.protobuf",
    "grpc",
    "flytelike._runner",
    "flytelike._executor",
    "flytelike._config",
]
MODEL = ["flytelike._environment", "flytelike._task", "flytelike._resources", "flytelike._accelerators"]


def loaded_after(code: str, prefixes: list[str], home: Path) -> list[str]:
    """The modules under ``prefixes`` loaded when ``code`` has run and exited 0 (also through sys.exit)."""
    probe = (
        "import atexit, json, sys\n"
        f"prefixes = {prefixes!r}\n"
        "def report():\n"
        "    found = sorted(m for m in sys.modules if any(m == p or m.startswith(p + '.') for p in prefixes))\n"
        "    sys.__stderr__.write('LOADED ' + json.dumps(found) + '\\n')\n"
        "atexit.register(report)\n"
    )
    env = {**os.environ, "FLYTELIKE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", probe + code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    lines = [line for line in out.stderr.splitlines() if line.startswith("LOADED ")]
    assert out.returncode == 0, f"exit {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    assert lines, out.stderr
    return list(json.loads(lines[-1].removeprefix("LOADED ")))


def test_import_flytelike_reads_no_settings(isolated_config: Path) -> None:
    loaded = loaded_after("import flytelike", [*PYDANTIC, "flytelike._config", "tomllib"], isolated_config)
    assert loaded == []


def test_requests_the_builtin_catalog_answers_read_no_settings(isolated_config: Path) -> None:
    code = "import flytelike as fl\nassert fl.GPU('A100', 2).quantity == 2\nassert fl.Resources(gpu='T4:1').gpu\n"
    assert loaded_after(code, [*PYDANTIC, "flytelike._config", "tomllib"], isolated_config) == []


def test_other_requests_resolve_settings_without_pydantic(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYTELIKE_ACCELERATORS", '[{"name": "RTX6000"}]')
    code = "import flytelike as fl\nassert fl.GPU('RTX6000').device == 'RTX6000'\n"
    loaded = loaded_after(code, [*PYDANTIC, "flytelike._config", "tomllib"], isolated_config)
    assert loaded == [
        "flytelike._config",
        "flytelike._config._schema",
        "flytelike._config._sections",
    ]  # no TOML parser without a file, either


def test_a_run_without_pydantic_models_does_not_import_pydantic(isolated_config: Path) -> None:
    code = (
        "sys.argv = ['flytelike', 'run', '--no-progress', 'examples/hello.py', 'main', '--times', '2']\n"
        "from flytelike._cli import main\n"
        "main()\n"
    )
    assert loaded_after(code, [*PYDANTIC, "tomllib"], isolated_config) == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"]])
def test_help_does_not_import_the_runtime(argv: list[str], isolated_config: Path) -> None:
    code = f"sys.argv = ['flytelike', *{argv!r}]\nfrom flytelike._cli import main\nmain()\n"
    loaded = loaded_after(code, [*RUNTIME, *MODEL, *PYDANTIC], isolated_config)
    if argv == ["run", "--help"]:
        # The run command's own module loads the runner (its options come from it); still no pydantic.
        assert not [m for m in loaded if m.split(".")[0] in PYDANTIC]
    else:
        assert loaded == []


# What the hello run must not load: the worker pool and the worker protocol are for tasks with
# fl.Local(process=True); the Kubernetes and Batch classes for tasks that name those platforms; the template view
# for `flytelike show`; rich for the live view, which only a terminal gets.
NOT_FOR_HELLO = [
    "rich",
    "flytelike._backends.local._process_pool",
    "flytelike._backends.local._connection",
    "flytelike._backends.local._memory",
    "flytelike._backends.local._cgroup",
    "flytelike._worker",
    "flytelike._proto.worker",
    "tempfile",
    "secrets",
    "flytelike._platforms._kubernetes",
    "flytelike._platforms._batch",
    "flytelike._serde._decode",
]


@pytest.mark.parametrize("progress", ["--no-progress", "--progress"])
def test_the_hello_run_imports_neither_the_worker_pool_nor_unused_platforms(
    progress: str, isolated_config: Path
) -> None:
    code = (
        f"sys.argv = ['flytelike', 'run', '{progress}', 'examples/hello.py', 'main']\n"
        "from flytelike._cli import main\n"
        "main()\n"
    )
    assert loaded_after(code, NOT_FOR_HELLO, isolated_config) == []
