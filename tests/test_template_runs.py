"""Runs started from a template, literal inputs and a bundle digest (what ``flytelike serve`` does): the process
that runs them never imports the user's code, and every task, the children included, runs elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flytelike._bundle import build_bundle
from flytelike._config import load_settings
from flytelike._loader import load_file
from flytelike._proto.core.v1 import literals_pb2
from flytelike._runtime import Runtime, TemplateRunInput
from flytelike._serde import encode_values, task_template
from flytelike._storage import bundle_key, open_store
from flytelike.errors import BackendError, SpecError
from flytelike.testing import SubprocessBackend

TASKS = """
import asyncio

import flytelike as fl

env = fl.TaskEnvironment(name="tpl")
here = fl.TaskEnvironment(name="tpl-here", platform=fl.Local())


@env.task
async def square(x: int) -> int:
    return x * x


@env.task
async def total(n: int) -> int:
    return sum(await asyncio.gather(*(square(i) for i in range(n))))


@here.task
async def pinned() -> int:
    return 1
"""

SERVER_SIDE = """
import json, sys
import anyio
from flytelike._runtime import Runtime, TemplateRunInput
from flytelike._proto.core.v1 import literals_pb2
from flytelike.testing import SubprocessBackend

spec = json.load(open(sys.argv[1]))


async def main() -> None:
    async with Runtime(backends={"subprocess": SubprocessBackend.from_input}) as runtime:
        handle = await runtime.start_template(
            TemplateRunInput(
                template=bytes.fromhex(spec["template"]),
                inputs=bytes.fromhex(spec["inputs"]),
                bundle=spec["bundle"],
                module=spec["module"],
                platform="subprocess",
            )
        )
        outputs = literals_pb2.LiteralMap.FromString(await handle.result())
        print(json.dumps({
            "o0": outputs.literals["o0"].int_value,
            "actions": len(handle.actions()),
            "imported": sorted(m for m in sys.modules if m.startswith("tpl_tasks")),
        }))


anyio.run(main)
"""


async def _prepared(tmp_path: Path) -> tuple[dict[str, str], object]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'tpl'\n")
    path = root / "tpl_tasks.py"
    path.write_text(textwrap.dedent(TASKS))
    module = load_file(path)
    bundle = build_bundle(path)
    archive = bundle.write_to(tmp_path / "bundle.tar.gz")
    settings = load_settings()
    async with open_store(settings.store.url) as store:
        await store.put_file(bundle_key(bundle.digest), archive)
    task = module.total
    template = task_template(task, task.resolved(None))
    inputs = encode_values({"n": 5}, task.interface.inputs, where="total")
    return {
        "template": template.SerializeToString(deterministic=True).hex(),
        "inputs": inputs.hex(),
        "bundle": bundle.digest,
        "module": "tpl_tasks",
    }, module


async def test_a_template_run_never_imports_the_code(tmp_path: Path) -> None:
    spec, module = await _prepared(tmp_path)
    try:
        file = tmp_path / "spec.json"
        file.write_text(json.dumps(spec))
        done = subprocess.run(
            [sys.executable, "-c", SERVER_SIDE, str(file)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out == {"o0": sum(i * i for i in range(5)), "actions": 6, "imported": []}
    finally:
        sys.modules.pop(getattr(module, "__name__", ""), None)


async def test_a_missing_bundle_or_a_local_task_is_refused_before_anything_runs(tmp_path: Path) -> None:
    spec, module = await _prepared(tmp_path)
    try:
        async with Runtime(backends={"subprocess": SubprocessBackend.from_input}) as runtime:
            with pytest.raises(BackendError, match="is not in the store"):
                await runtime.start_template(
                    TemplateRunInput(
                        template=bytes.fromhex(spec["template"]),
                        inputs=bytes.fromhex(spec["inputs"]),
                        bundle="0" * 64,
                        module="tpl_tasks",
                        platform="subprocess",
                    )
                )
            pinned = module.pinned  # type: ignore[attr-defined]
            template = task_template(pinned, pinned.resolved(None)).SerializeToString()
            with pytest.raises(SpecError, match="its code is not in this process"):
                await runtime.start_template(
                    TemplateRunInput(
                        template, literals_pb2.LiteralMap().SerializeToString(), spec["bundle"], "tpl_tasks"
                    )
                )
            with pytest.raises(SpecError, match="not a serialized TaskTemplate"):
                await runtime.start_template(TemplateRunInput(b"\xff\xff", b"", spec["bundle"], "tpl_tasks"))
    finally:
        sys.modules.pop(getattr(module, "__name__", ""), None)
