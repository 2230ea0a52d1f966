"""Inputs from files: ``--config @cfg.yaml`` (or a .json/.yaml path) for one dataclass, model, list or dict input,
``--inputs-file`` for all of them (options on the command line win); ``--help`` lists a dataclass's or model's
fields; ``fl.File`` inputs must exist; an unknown option of ``run`` itself is reported as one."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flytelike._cli import cli

TASKS = """
from dataclasses import dataclass, field

from pydantic import BaseModel

import flytelike as fl

env = fl.TaskEnvironment(name="inputs")


@dataclass
class Train:
    rows: int
    lr: float = 0.01
    tags: list[str] = field(default_factory=lambda: ["base"])


class Model(BaseModel):
    name: str
    layers: int = 2


@env.task
async def configured(
    train: Train,
    model: Model | None = None,
    shards: list[int] = [0],
    extra: dict[str, float] = {},
    n: int = 1,
) -> str:
    return repr((train, model, shards, extra, n))


@env.task
async def count(data: fl.File, n: int = 1) -> int:
    with open(data.path) as f:
        return len(f.read()) * n
"""


@pytest.fixture
def tasks(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / f"inputs_tasks_{id(tmp_path)}.py"
    path.write_text(textwrap.dedent(TASKS))
    yield path
    sys.modules.pop(path.stem, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["run", "--no-progress", *map(str, args)], catch_exceptions=False)


def test_a_dataclass_model_list_and_dict_from_files(tasks: Path, tmp_path: Path) -> None:
    (tmp_path / "train.yaml").write_text("rows: 5\ntags: [a, b]\n")
    (tmp_path / "model.json").write_text('{"name": "tiny", "layers": 4}')
    (tmp_path / "shards.yml").write_text("- 1\n- 2\n")
    (tmp_path / "extra.yaml").write_text("dropout: 0.1\n")
    result = run(
        tasks,
        "configured",
        "--train",
        f"@{tmp_path / 'train.yaml'}",
        "--model",
        str(tmp_path / "model.json"),  # a path ending in .json/.yaml/.yml that exists needs no @
        "--shards",
        f"@{tmp_path / 'shards.yml'}",
        "--extra",
        f"@{tmp_path / 'extra.yaml'}",
    )
    assert result.exit_code == 0, result.output
    expected = "(Train(rows=5, lr=0.01, tags=['a', 'b']), Model(name='tiny', layers=4), [1, 2], {'dropout': 0.1}, 1)"
    assert result.output == expected + "\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        ("rows: [", "is not valid YAML"),
        ("rows: lots", "'lots'"),
        ("rows: 1\ncolour: red\n", "unknown field(s) ['colour']"),
    ],
)
def test_a_bad_file_names_the_option_and_the_file(
    tasks: Path, tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "train.yaml"
    if content is not None:
        path.write_text(content)
    result = run(tasks, "configured", "--train", f"@{path}")
    assert result.exit_code == 2
    assert "Invalid value for '--train'" in result.output
    assert expected in result.output


def test_inputs_file_sets_every_input_and_the_command_line_wins(tasks: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("train: {rows: 3}\nmodel: {name: m}\nn: 2\nshards: [7]\n")
    result = CliRunner().invoke(
        cli,
        ["run", "--no-progress", "--inputs-file", str(inputs), str(tasks), "configured", "--n", "5"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "Train(rows=3, lr=0.01, tags=['base'])" in result.output
    assert "Model(name='m', layers=2)" in result.output
    assert result.output.endswith("[7], {}, 5)\n")  # --n 5 beat the file's n: 2

    as_json = tmp_path / "inputs.json"
    as_json.write_text(json.dumps({"train": {"rows": 1}}))
    result = CliRunner().invoke(
        cli, ["run", "--no-progress", "--inputs-file", str(as_json), str(tasks), "configured"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output  # the required input came from the file


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("trian: {rows: 1}\n", "has no input 'trian'; did you mean train"),
        ("- 1\n", "expected a mapping of input names to values, got list"),
        ("train: {rows: x}\n", "inputs.configured(train) in"),
    ],
)
def test_a_bad_inputs_file_exits_2_naming_the_option(tasks: Path, tmp_path: Path, content: str, expected: str) -> None:
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(content)
    result = CliRunner().invoke(
        cli, ["run", "--inputs-file", str(inputs), str(tasks), "configured"], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "'--inputs-file'" in result.output
    assert expected in result.output


def test_help_lists_the_fields_of_dataclasses_and_models(tasks: Path) -> None:
    result = run(tasks, "configured", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # help text wraps
    assert 'fields: rows: int (required), lr: float = 0.01, tags: list[str] = ["base"]' in text
    assert "fields: name: str (required), layers: int = 2" in text
    assert "--config @config.yaml" in text


def test_file_inputs_must_exist(tasks: Path, tmp_path: Path) -> None:
    missing = run(tasks, "count", "--data", str(tmp_path / "nope.txt"))
    assert missing.exit_code == 2
    assert "Invalid value for '--data'" in missing.output
    assert "no such file" in missing.output
    assert "nope.txt" in missing.output

    folder = run(tasks, "count", "--data", str(tmp_path))  # a folder is not a file
    assert folder.exit_code == 2
    assert "no such file" in folder.output

    data = tmp_path / "data.txt"
    data.write_text("abc")
    ok = run(tasks, "count", "--data", str(data), "--n", "2")
    assert ok.exit_code == 0, ok.output
    assert ok.output == "6\n"


def test_an_unknown_run_option_is_reported_as_one_with_close_matches(tasks: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--lable", "a=b", str(tasks), "count"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "No such option '--lable'. (Did you mean one of: '--label'" in result.output
    assert "no such file" not in result.output

    unrelated = CliRunner().invoke(cli, ["run", "--zzz", str(tasks), "count"], catch_exceptions=False)
    assert unrelated.exit_code == 2
    assert "No such option '--zzz'" in unrelated.output


def test_an_unknown_task_option_names_the_closest_input(tasks: Path) -> None:
    result = run(tasks, "configured", "--trian", "{}")
    assert result.exit_code == 2
    assert "No such option '--trian'" in result.output
    assert "'--train'" in result.output
