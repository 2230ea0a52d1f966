"""Task files named like standard-library modules, and task names that could mean two tasks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import flytelike as fl
from flytelike._loader import find_task, load_file
from flytelike.errors import LoadError

REPO = Path(__file__).resolve().parents[1]

TASKS = """
    import json

    import flytelike as fl

    env = fl.TaskEnvironment(name="shadow")


    @env.task
    async def main(n: int = 2) -> str:
        return json.dumps({{"n": n, "from": {name!r}}})
"""


@pytest.mark.parametrize("stem", ["types", "json", "csv"])
def test_a_file_named_like_a_stdlib_module_loads_without_replacing_it(tmp_path: Path, stem: str) -> None:
    path = tmp_path / f"{stem}.py"
    path.write_text(textwrap.dedent(TASKS.format(name=stem)))
    module = load_file(path)
    try:
        assert module.__name__ == f"flytelike_file_{stem}"
        assert sys.modules["types"] is types
        assert sys.modules["json"] is json
        if stem == "csv":
            import csv

            assert Path(csv.__file__).parent != tmp_path  # the standard library still wins
        handle = fl.run(find_task(module, "main"), 3)
        assert json.loads(handle.outputs) == {"n": 3, "from": stem}
    finally:
        sys.modules.pop(module.__name__, None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


def test_flytelike_run_accepts_a_file_named_types_py(tmp_path: Path) -> None:
    path = tmp_path / "types.py"
    path.write_text(textwrap.dedent(TASKS.format(name="types")))
    # The installed command, as a user runs it from the file's folder (`python -m` would itself put the folder,
    # and so this types.py, first on sys.path before flytelike is even imported).
    command = Path(sys.executable).parent / "flytelike"
    result = subprocess.run(
        [str(command), "run", "types.py", "main", "--n", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert '{"n": 5, "from": "types"}' in result.stdout
    assert "Traceback" not in result.stderr


def test_two_tasks_with_one_full_name_in_a_module_are_an_error() -> None:
    first = fl.TaskEnvironment(name="dup")
    second = fl.TaskEnvironment(name="dup")

    @first.task
    async def f() -> None: ...

    globals()["_dup_env_first"] = first  # the module now holds one environment named "dup" with a task f
    try:
        with pytest.raises(fl.SpecError) as info:

            @second.task(name="f")
            async def g() -> None: ...

        assert info.value.field == "dup.task.name"
        assert "already defined in module" in info.value.problem
    finally:
        del globals()["_dup_env_first"]


AMBIGUOUS = """
    import flytelike as fl

    s = fl.TaskEnvironment(name="s")
    t = fl.TaskEnvironment(name="t")


    @t.task
    async def f() -> str:
        return "t"


    @s.task(name="f")
    async def s_f() -> str:
        return "s"
"""


def test_a_short_name_two_environments_share_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ambiguous_tasks.py"
    path.write_text(textwrap.dedent(AMBIGUOUS))
    module = load_file(path)
    try:
        with pytest.raises(LoadError, match=r"'f' is ambiguous: s\.f, t\.f"):
            find_task(module, "f")
        assert fl.run(find_task(module, "s.f")).outputs == "s"
        assert fl.run(find_task(module, "t.f")).outputs == "t"
    finally:
        sys.modules.pop(module.__name__, None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


def test_running_the_same_definitions_again_is_not_a_clash() -> None:
    # A notebook cell (or an exec'd file) run twice: a new environment of the same name redefines the same function.
    source = textwrap.dedent(
        """
        import flytelike as fl

        env = fl.TaskEnvironment(name="rerun")

        @env.task
        async def f() -> int:
            return 1
        """
    )
    scope: dict[str, object] = {"__name__": "rerun_cell"}
    exec(source, scope)
    exec(source, scope)
    assert fl.run(scope["f"]).outputs == 1  # type: ignore[arg-type]


def test_another_function_under_the_same_full_name_is_a_clash_even_without_its_environment() -> None:
    async def one() -> None: ...

    async def two() -> None: ...

    # Only the task is held by the module, not its environment; a different function under its full name clashes.
    globals()["_clash_task"] = fl.TaskEnvironment(name="clash").task(name="f")(one)
    try:
        with pytest.raises(fl.SpecError, match="already defined in module"):
            fl.TaskEnvironment(name="clash").task(name="f")(two)
    finally:
        del globals()["_clash_task"]
