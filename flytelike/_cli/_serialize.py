"""``flytelike serialize FILE [-o DIR]`` and ``flytelike show FILE TASK --as template|kubernetes|batch [-o json|yaml]``.

Both load the user's file the way ``flytelike run`` does and build each task's protobuf TaskTemplate; nothing is
run. Output is deterministic: the same definitions give byte-identical files on every run and machine.
``--as kubernetes`` prints the pod it would run as; ``--as batch`` the AWS Batch request bodies
(RegisterJobDefinition, SubmitJob) of the task's first attempt. Nothing is sent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import click
import yaml
from google.protobuf import json_format

from flytelike._cli._show_kubernetes import kubernetes_manifest
from flytelike._config import load_settings
from flytelike._loader import find_task, load_file, tasks_in
from flytelike._proto.core.v1 import tasks_pb2
from flytelike._serde._decode import describe_template
from flytelike._serde._template import task_template
from flytelike._task import Task
from flytelike.errors import FlytelikeError

__all__ = ["serialize", "show", "template_json"]

# Exit code of every "your input is wrong" failure (a file that does not import, a missing task, a bad
# definition), as click uses 2 for usage errors; 1 stays for failures of the program itself.
EXIT_USAGE = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _load(file: str) -> ModuleType:
    try:
        return load_file(file)
    except FlytelikeError as e:  # LoadError names the file and line; it wraps SpecErrors raised while importing
        _fail(str(e))


def _template(task: Task[..., Any]) -> tasks_pb2.TaskTemplate:
    try:
        return task_template(task)
    except FlytelikeError as e:  # e.g. a default that cannot be serialized: a definition mistake
        _fail(f"task {task.full_name}: {e}")


def template_json(template: tasks_pb2.TaskTemplate) -> str:
    """Protobuf's JSON mapping of a template, with sorted keys and a fixed indent, ending in a newline.

    Example:
        >>> print(template_json(tasks_pb2.TaskTemplate(type="python-task")), end="")
        {
          "type": "python-task"
        }
    """
    return json_format.MessageToJson(template, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


@click.command(short_help="Write the protobuf task templates of a Python file.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False),
    default="build",
    show_default=True,
    help="Folder to write <env>.<task>.pb and <env>.<task>.json into; created if missing.",
)
def serialize(file: str, output_dir: str) -> None:
    """Write one TaskTemplate per task of FILE: <env>.<task>.pb (deterministic protobuf bytes) and
    <env>.<task>.json (protobuf's JSON mapping), and print each task's version.

    \b
    flytelike serialize examples/train.py -o build/
    """
    module = _load(file)
    # tasks_in lists each task under its short and its full name; the full name is unique.
    tasks = {t.full_name: t for t in tasks_in(module).values()}
    if not tasks:
        _fail(f"{file}: defines no tasks (declare them with @env.task on a fl.TaskEnvironment)")
    templates = [(name, _template(tasks[name])) for name in sorted(tasks)]
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, template in templates:
            (out / f"{name}.pb").write_bytes(template.SerializeToString(deterministic=True))
            (out / f"{name}.json").write_text(template_json(template), encoding="utf-8", newline="\n")
    except OSError as e:
        _fail(f"cannot write to {output_dir}: {e.strerror or e}")
    width = max(len(name) for name in tasks)
    for name, template in templates:
        click.echo(f"{name:<{width}}  {template.id.version}")


@click.command(short_help="Print the task template a task would run with, without running it.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("task")
@click.option(
    "--as",
    "as_",
    type=click.Choice(["template", "kubernetes", "batch"]),
    default="template",
    show_default=True,
    help="What to show: the protobuf task template, the pod it would run as (kubernetes), or the AWS Batch "
    "requests (jobDefinition, submitJob) of its first attempt, for an EC2 queue (Fargate when the task sets "
    "ephemeral_storage); nothing is sent.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["json", "yaml"]),
    default="json",
    show_default=True,
    help="json: protobuf's JSON mapping; yaml: a readable summary in SDK terms.",
)
def show(file: str, task: str, as_: str, output: str) -> None:
    """Print TASK of FILE as it would be sent to a backend.

    \b
    flytelike show examples/train.py train
    flytelike show examples/train.py train -o yaml
    flytelike show examples/train.py train --as kubernetes -o yaml
    flytelike show examples/train.py train --as batch
    """
    module = _load(file)
    try:
        found = find_task(module, task, source=file)
    except FlytelikeError as e:
        _fail(str(e))
    if as_ == "kubernetes":
        try:
            manifest = kubernetes_manifest(found, file, load_settings())
        except FlytelikeError as e:
            _fail(str(e))
        if output == "json":
            click.echo(json.dumps(manifest, indent=2))
        else:
            click.echo(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), nl=False)
        return
    template = _template(found)
    if as_ == "batch":
        _show_batch(template, output)
        return
    if output == "json":
        click.echo(template_json(template), nl=False)
        return
    click.echo(yaml.safe_dump(describe_template(template), sort_keys=False, allow_unicode=True), nl=False)


def _show_batch(template: tasks_pb2.TaskTemplate, output: str) -> None:
    # Imported here: the Batch request mapping (and the executor's task model) only matter to this choice.
    from flytelike._backends.batch import Compute, show_requests
    from flytelike._executor import ExecTask

    task = ExecTask.from_template(template)
    platform = template.platform.batch if template.platform.WhichOneof("kind") == "batch" else None
    compute: Compute = "FARGATE" if platform is not None and platform.HasField("ephemeral_storage_gib") else "EC2"
    try:
        requests = show_requests(task, load_settings(), compute)
    except FlytelikeError as e:
        _fail(str(e))
    if output == "json":
        click.echo(json.dumps(requests, indent=2, sort_keys=True))
        return
    click.echo(yaml.safe_dump(requests, sort_keys=False, allow_unicode=True), nl=False)
