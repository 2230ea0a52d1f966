"""The documentation runs as written.

- Every ```python block of ``docs/*.md`` and ``README.md`` is executed as a script of its own (``__name__ ==
  "__main__"``), in a temporary working directory with ``FLYTELIKE_HOME`` there too (the autouse fixtures of
  conftest), unless its first line is ``# not run: <reason>``. The working directory holds ``template.pb``, the
  serialized template of a sample task (what ``flytelike serialize`` writes), for the blocks that decode one.
- A line ``print(...)  # -> TEXT`` also checks what it prints: the output must equal TEXT, where ``...`` in TEXT
  stands for any text (machine-dependent numbers, long messages). A comment ``# prints:`` followed by comment lines
  lists output lines that must appear, consecutively and in that order, in what the block prints (same ``...``
  rule).
- Every ``examples/seeds/*.py`` file imports cleanly, every task in it resolves, and the file runs as a script.
- The device tables of ``docs/resources.md`` are exactly what the catalog holds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import runpy
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flytelike as fl
from flytelike._accelerators import DeviceClass, DeviceSpec
from flytelike.errors import AdmissionError

ROOT = Path(__file__).resolve().parents[1]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
SEEDS = sorted((ROOT / "examples" / "seeds").glob("*.py"))

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_EXPECT = re.compile(r"^(?P<indent>[ \t]*)print\((?P<args>.*)\)[ \t]*#[ \t]*->[ \t]?(?P<expected>.*)$")
_ARROW = re.compile(r"#[ \t]*->")
_NOT_RUN = "# not run:"

# --- python blocks ---------------------------------------------------------------------------------------------------


def _blocks() -> Iterator[Any]:
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 2  # the first line of code, 1-based
            code = m.group(1)
            name = f"{path.relative_to(ROOT)}:{line}"
            if code.lstrip().startswith(_NOT_RUN):
                reason = code.lstrip().splitlines()[0][len(_NOT_RUN) :].strip()
                assert reason, f"{name}: '# not run:' needs a reason"
                yield pytest.param(path, line, code, id=name, marks=pytest.mark.skip(reason=f"not run: {reason}"))
            else:
                yield pytest.param(path, line, code, id=name)


def printed_sections(code: str) -> list[list[str]]:
    """The expected lines of each ``# prints:`` comment in ``code``."""
    sections: list[list[str]] = []
    current: list[str] | None = None
    for line in code.splitlines():
        stripped = line.strip()
        if stripped == "# prints:":
            current = []
            sections.append(current)
        elif current is not None and stripped.startswith("#"):
            current.append(stripped[2:] if stripped.startswith("# ") else stripped[1:])
        else:
            current = None
    return [s for s in sections if s]


def contains_lines(expected: list[str], output: list[str]) -> bool:
    """``expected`` matches a consecutive run of ``output`` lines."""
    return any(
        all(matches(e, a) for e, a in zip(expected, output[i : i + len(expected)], strict=True))
        for i in range(len(output) - len(expected) + 1)
    )


def matches(expected: str, actual: str) -> bool:
    """``actual`` equals ``expected``, where each ``...`` in ``expected`` stands for any text."""
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


class _Expectations:
    """Backs the ``print(...)  # -> TEXT`` lines: prints as usual and records what did not match."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[str] = []

    def __call__(self, where: str, expected: str, *args: Any, **kwargs: Any) -> None:
        out = io.StringIO()
        print(*args, **{**kwargs, "file": out})
        actual = out.getvalue().removesuffix("\n")
        print(actual)
        if not matches(expected, actual):
            self.failures.append(f"{where}\n  expected: {expected}\n  printed:  {actual}")


def instrument(code: str, name: str, first_line: int) -> str:
    """Turn ``print(ARGS)  # -> TEXT`` into a checked call, keeping line numbers."""
    lines = []
    for i, line in enumerate(code.splitlines()):
        m = _EXPECT.match(line)
        if m:
            where = f"{name.split(':')[0]}:{first_line + i}"
            line = f"{m['indent']}__expect__({where!r}, {m['expected']!r}, {m['args']})"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _write_sample_template(path: Path) -> None:
    from flytelike._serde import task_template

    env = fl.TaskEnvironment(
        name="training",
        resources=fl.Resources(cpu="2", memory="16Gi", gpu=fl.GPU("A100", 1, "1g.5gb"), shm="auto"),
    )

    @env.task
    async def train(shard: str) -> float:
        return 0.5

    path.write_bytes(task_template(train).SerializeToString(deterministic=True))


@pytest.mark.parametrize(("path", "line", "code"), list(_blocks()))
def test_python_block(path: Path, line: int, code: str, tmp_path: Path) -> None:
    name = f"{path.relative_to(ROOT)}:{line}"
    for i, text in enumerate(code.splitlines()):
        # An expectation the checker cannot see (say, after a formatter split the print over lines) would pass
        # silently: such a block must use the `# prints:` form instead.
        assert not _ARROW.search(text) or _EXPECT.match(text), (
            f"{path.relative_to(ROOT)}:{line + i}: '# ->' must follow a one-line print(...); use '# prints:'"
        )
    _write_sample_template(Path("template.pb"))
    # Named like a module so that a Local(process=True) task in the block can be imported by a worker process.
    script = tmp_path / f"doc_{path.stem.replace('-', '_').lower()}_{line}.py"
    script.write_text(instrument(code, name, line), encoding="utf-8")
    expect = _Expectations(name)
    with warnings.catch_warnings(record=True), contextlib.redirect_stdout(io.StringIO()) as out:
        warnings.simplefilter("always")  # blocks may show warnings (CapacityWarning); they are output, not errors
        runpy.run_path(str(script), init_globals={"__expect__": expect}, run_name="__main__")
    assert not expect.failures, "printed output differs from the docs:\n" + "\n".join(expect.failures)
    output = out.getvalue().splitlines()
    for lines in printed_sections(code):
        assert contains_lines(lines, output), (
            f"{name}: the '# prints:' lines do not appear in the output.\nexpected:\n"
            + "\n".join(lines)
            + "\noutput:\n"
            + "\n".join(output)
        )


def test_expectation_matching() -> None:
    assert matches("Resources(cpu='4')", "Resources(cpu='4')")
    assert matches("task a requests ... of memory", "task a requests 58.6 GiB of memory")
    assert not matches("Resources(cpu='4')", "Resources(cpu='2')")
    assert instrument("print(x)  # -> 1\n", "d.md:1", 1) == "__expect__('d.md:1', '1', x)\n"
    assert printed_sections("f()\n# prints:\n#   a\n# b ...\nx = 1\n# note\n") == [["  a", "b ..."]]
    assert contains_lines(["b", "c..."], ["a", "b", "c d"])
    assert not contains_lines(["a", "c"], ["a", "b", "c"])


def test_blocks_exist() -> None:
    names = {p.name for p in DOCS}
    assert {"resources.md", "tasks.md", "running.md", "configuration.md", "from-metaflow-and-flyte.md"} <= names
    assert len(list(_blocks())) > 50


# --- examples/seeds --------------------------------------------------------------------------------------------------


def _import(path: Path) -> Any:
    name = f"seed_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic models look their module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _tasks(module: Any) -> list[fl.Task[..., Any]]:
    found: dict[int, fl.Task[..., Any]] = {}
    for value in vars(module).values():
        if isinstance(value, fl.Task):
            found[id(value)] = value
        elif isinstance(value, fl.TaskEnvironment):
            found.update((id(t), t) for t in value.tasks.values())
    return list(found.values())


def test_seed_files_exist() -> None:
    assert len(SEEDS) >= 6, SEEDS


@pytest.mark.parametrize("path", SEEDS, ids=[p.name for p in SEEDS])
def test_seed_imports_and_resolves(path: Path) -> None:
    module = _import(path)
    tasks = _tasks(module)
    assert tasks, f"{path.name} defines no task"
    for task in tasks:
        resolved = task.resolved()
        assert isinstance(resolved.resources, fl.Resources)
        if resolved.platform is None:  # unpinned tasks also resolve for the platforms --with can choose
            for spec in ("kubernetes", "batch"):
                task.resolved(fl.parse_platform_spec(spec))


@pytest.mark.parametrize("path", SEEDS, ids=[p.name for p in SEEDS])
def test_seed_runs_as_a_script(path: Path) -> None:
    # Seeds whose tasks are pinned to Kubernetes or Batch print their resolved settings as a script; the rest run
    # with fl.run. BigSum can never fit a machine with less than 60000Mi: its run must stop before anything starts.
    big_enough = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >= 60000 * 2**20
    if path.stem == "bigsum_resources" and big_enough:
        pytest.skip("this machine has the 60000Mi BigSum asks for: running it would allocate 48 GB")
    with warnings.catch_warnings(record=True), contextlib.redirect_stdout(io.StringIO()) as out:
        warnings.simplefilter("always")
        if path.stem == "bigsum_resources":
            with pytest.raises(AdmissionError, match="can never fit"):
                runpy.run_path(str(path), run_name="__main__")
            return
        runpy.run_path(str(path), run_name="__main__")
    assert out.getvalue().strip(), f"{path.name} printed nothing as a script"


# --- the device catalog ----------------------------------------------------------------------------------------------

_CLASS_TITLES = {
    DeviceClass.NVIDIA_GPU: "NVIDIA GPUs",
    DeviceClass.GOOGLE_TPU: "Google Cloud TPUs",
    DeviceClass.AMD_GPU: "AMD GPUs",
    DeviceClass.AMAZON_NEURON: "AWS Inferentia and Trainium (Neuron)",
    DeviceClass.HABANA_GAUDI: "Intel Habana Gaudi",
}
_CATALOG_START = "<!-- catalog:start (generated from fl.catalog() by tests/test_docs.py; do not edit) -->"
_CATALOG_END = "<!-- catalog:end -->"


def _chips(topology: str) -> int:
    n = 1
    for d in topology.split("x"):
        n *= int(d)
    return n


def _row(spec: DeviceSpec) -> str:
    aliases = " ".join(f"`{a}`" for a in spec.aliases)
    per_task = "1" if spec.max_quantity == 1 else f"1-{spec.max_quantity}"
    if spec.device_class is DeviceClass.GOOGLE_TPU:
        parts = ", ".join(f"`{p}` ({_chips(p)})" for p in spec.partitions)
        return f"| `{spec.name}` | {aliases or '-'} | `{spec.node_label}` | {parts} |"
    parts = " ".join(f"`{p}`" for p in spec.partitions) or "-"
    return f"| `{spec.name}` | {aliases or '-'} | `{spec.node_label}` | {per_task} | {parts} |"


def catalog_markdown(specs: list[DeviceSpec]) -> str:
    """The device tables of docs/resources.md, one per device class."""
    out = [_CATALOG_START]
    classes = [*_CLASS_TITLES, *(c for c in DeviceClass if c not in _CLASS_TITLES)]
    for cls in classes:
        rows = [s for s in specs if s.device_class is cls]
        if not rows:
            continue
        out += ["", f'**{_CLASS_TITLES.get(cls, cls.value)}** (`device_class="{cls.value}"`)', ""]
        if cls is DeviceClass.GOOGLE_TPU:
            out += [
                "| device | also written | node label | topologies (`partition=`) and their chip counts |",
                "|---|---|---|---|",
            ]
        else:
            parts = "MIG profiles" if cls is DeviceClass.NVIDIA_GPU else "partitions"
            out += [
                f"| device | also written | node label | devices per task | {parts} (`partition=`) |",
                "|---|---|---|---|---|",
            ]
        out += [_row(s) for s in sorted(rows, key=lambda s: s.name.lower())]
    out += ["", _CATALOG_END]
    return "\n".join(out)


def test_catalog_tables_match_the_catalog() -> None:
    text = (ROOT / "docs" / "resources.md").read_text(encoding="utf-8")
    start, end = text.index(_CATALOG_START), text.index(_CATALOG_END) + len(_CATALOG_END)
    expected = catalog_markdown(fl.catalog())
    assert text[start:end] == expected, (
        "docs/resources.md's device tables differ from fl.catalog(); replace them with the output of "
        "`python tests/test_docs.py`"
    )
    listed = set(re.findall(r"^\| `([^`]+)` \|", text[start:end], re.MULTILINE))
    assert listed == {d.name for d in fl.catalog()}


if __name__ == "__main__":
    print(catalog_markdown(fl.catalog()))
