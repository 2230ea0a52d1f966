"""``flytelike serialize`` and ``flytelike show``: files written, deterministic across processes, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from google.protobuf import json_format

from flytelike._cli._serialize import serialize, show
from flytelike._proto.core.v1 import tasks_pb2
from flytelike._serde._decode import describe_template

FLOW = """\
    import dataclasses
    import flytelike as fl

    @dataclasses.dataclass
    class Point:
        x: int
        y: float = 0.5

    training = fl.TaskEnvironment(
        name="training",
        image="ghcr.io/acme/train:1.4",
        resources=fl.Resources(cpu=("1", "2"), memory="1024Mi", gpu=fl.GPU("A100", 1, "1g.5gb"), shm="auto"),
        secrets=[fl.Secret("hf-token")],
    )
    serving = fl.TaskEnvironment(name="serving", platform=fl.Kubernetes(namespace="ml", qos="Guaranteed"))

    @training.task(retries=2, timeout="90s", cache=fl.Cache(ttl="1h"))
    async def train(shard: str, lr: float = 1e-3, at: Point = Point(1)) -> float:
        \"\"\"Trains one shard.\"\"\"
        return lr

    @serving.task(name="train")
    def serve_train(n: int = 3) -> list[int]:
        return list(range(n))
"""


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def invoke(command: object, args: list[str]) -> Result:
    return CliRunner().invoke(command, args, catch_exceptions=False)  # type: ignore[arg-type]


def test_serialize_writes_a_template_and_its_json_view_per_task(tmp_path: Path) -> None:
    flow = write(tmp_path, "cli_flow_files.py", FLOW)
    out = tmp_path / "out"
    result = invoke(serialize, [str(flow), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "serving.train.json",
        "serving.train.pb",
        "training.train.json",
        "training.train.pb",
    ]
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["serving.train", "training.train"]
    for line in lines:
        name, version = line.split()
        template = tasks_pb2.TaskTemplate.FromString((out / f"{name}.pb").read_bytes())
        assert template.id.name == name
        assert template.id.version == version
        text = (out / f"{name}.json").read_text(encoding="utf-8")
        assert json_format.Parse(text, tasks_pb2.TaskTemplate()) == template
        assert list(json.loads(text)) == sorted(json.loads(text))  # keys sorted
    train = tasks_pb2.TaskTemplate.FromString((out / "training.train.pb").read_bytes())
    assert [(e.name, e.value) for e in train.container.resources.requests][:2] == [
        (tasks_pb2.Resources.CPU, "1"),
        (tasks_pb2.Resources.MEMORY, "1Gi"),
    ]
    assert train.extended_resources.gpu_accelerator.partition_size == "1g.5gb"


def test_serialize_writes_to_build_by_default(tmp_path: Path) -> None:
    flow = write(tmp_path, "cli_flow_default_dir.py", FLOW)
    assert invoke(serialize, [str(flow)]).exit_code == 0
    assert (Path.cwd() / "build" / "training.train.pb").is_file()


def run_serialize(flow: Path, out: Path, hash_seed: str, cwd: Path) -> None:
    code = "from flytelike._cli._serialize import serialize; serialize.main([{!r}, '-o', {!r}], standalone_mode=True)"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run(
        [sys.executable, "-c", code.format(str(flow), str(out))], check=True, env=env, cwd=cwd, capture_output=True
    )


def test_two_processes_write_byte_identical_files(tmp_path: Path) -> None:
    flow = write(tmp_path, "cli_flow_processes.py", FLOW)
    # Different hash seeds and working directories: neither may leak into the bytes.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run_serialize(flow, tmp_path / "one", "1", tmp_path / "a")
    run_serialize(flow, tmp_path / "two", "2", tmp_path / "b")
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    two = {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir()}
    assert len(one) == 4
    assert one == two


def test_show_prints_the_json_mapping(tmp_path: Path) -> None:
    flow = write(tmp_path, "cli_flow_show_json.py", FLOW)
    result = invoke(show, [str(flow), "training.train", "--as", "template"])
    assert result.exit_code == 0, result.output
    template = json_format.Parse(result.output, tasks_pb2.TaskTemplate())
    assert template.id.name == "training.train"
    serialized = invoke(serialize, [str(flow), "-o", "out"])
    assert serialized.exit_code == 0
    assert result.output == Path("out/training.train.json").read_text(encoding="utf-8")


def test_show_yaml_describes_the_task_in_sdk_terms(tmp_path: Path) -> None:
    flow = write(tmp_path, "cli_flow_show_yaml.py", FLOW)
    ambiguous = invoke(show, [str(flow), "train", "-o", "yaml"])  # two environments have a task called so
    assert ambiguous.exit_code != 0
    assert "'train' is ambiguous: serving.train, training.train" in ambiguous.output
    result = invoke(show, [str(flow), "training.train", "-o", "yaml"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert list(shown)[:2] == ["name", "version"]
    assert shown["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi", "gpu": "1"},
        "limits": {"cpu": "2", "gpu": "1"},
    }
    assert shown["accelerator"] == {"device": "A100", "class": "nvidia-gpu", "partition": "1g.5gb", "count": 1}
    assert shown["shm"]["size"] == "auto"
    assert shown["retries"]["count"] == 2
    assert shown["timeout_seconds"] == 90
    assert shown["cache"]["ttl_seconds"] == 3600
    assert shown["secrets"] == ["hf-token"]
    assert shown["inputs"] == {
        "shard": {"type": "str"},
        "lr": {"type": "float", "default": 0.001},
        "at": {"type": "Point", "default": {"x": 1, "y": 0.5}},
    }
    assert shown["outputs"] == {"o0": "float"}
    json_result = invoke(show, [str(flow), "training.train"])
    assert shown == describe_template(json_format.Parse(json_result.output, tasks_pb2.TaskTemplate()))


def test_show_refuses_a_view_it_does_not_have(tmp_path: Path) -> None:
    flow = write(tmp_path, "cli_flow_as.py", FLOW)
    result = CliRunner().invoke(show, [str(flow), "train", "--as", "slurm"])
    assert result.exit_code == 2
    assert "Invalid value for '--as': 'slurm'" in result.output


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import flytelike as fl\n\ndef broken(:\n", ":3: syntax error"),
        (
            "import flytelike as fl\nx = 1\nraise RuntimeError('boom')\n",
            ":3: importing the file failed: RuntimeError: boom",
        ),
        (
            "import flytelike as fl\nenv = fl.TaskEnvironment(name='e')\n\n@env.task\ndef f(x: object) -> int:\n"
            "    return 1\n",
            ":4: importing the file failed: SpecError: e.f(x)=",
        ),
        (
            "import flytelike as fl\nres = fl.Resources(\n    memory=16,\n)\n",
            ":2: importing the file failed: SpecError: Resources.memory=16",
        ),
        ("import flytelike as fl\n", "defines no tasks"),
    ],
)
def test_bad_files_give_one_error_with_file_and_line(tmp_path: Path, source: str, expected: str) -> None:
    flow = write(tmp_path, "cli_flow_bad.py", source)
    for command, args in ((serialize, [str(flow)]), (show, [str(flow), "f"])):
        result = CliRunner().invoke(command, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        if command is serialize or "defines no tasks" not in expected:
            assert result.output.startswith(f"Error: {flow}"), result.output
            assert expected in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_missing_files_and_tasks_are_clear_errors(tmp_path: Path) -> None:
    missing = CliRunner().invoke(serialize, [str(tmp_path / "nope.py")])
    assert missing.exit_code == 2
    assert missing.output == f"Error: {tmp_path / 'nope.py'}: no such file\n"
    flow = write(tmp_path, "cli_flow_missing_task.py", FLOW)
    result = CliRunner().invoke(show, [str(flow), "evaluate"])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {flow}: no task named 'evaluate'; tasks defined: ")
