"""The one execute() core: template and literal bytes in, literal bytes or a structured error out; and the calls a
task makes through it (SubmitChild numbered in call order, the child's own template, results and errors back)."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from flytelike._loader import find_task, load_file
from flytelike._platform_spec import parse_platform_spec
from flytelike._proto.core.v1 import tasks_pb2
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._serde import decode_values, encode_values, task_template
from flytelike._worker._children import Children, Deliver
from flytelike._worker._execute import ExecuteCache, ExecuteInput, ExecuteResult, execute

Kind = worker_pb2.Error.Kind

SOURCE = textwrap.dedent(
    """
    import asyncio
    import flytelike as fl

    env = fl.TaskEnvironment(name="ex")

    @env.task
    async def add(x: int, y: int = 1) -> int:
        await asyncio.sleep(0)
        return x + y

    @env.task
    def pair(words: list[str]) -> tuple[int, str]:
        return len(words), "-".join(words)

    @env.task
    def fails(n: int) -> None:
        raise ValueError(f"bad {n}")

    @env.task
    def greedy() -> None:
        raise MemoryError()

    @env.task
    async def fan(n: int) -> list[int]:
        return list(await asyncio.gather(*(add(i, y=10) for i in range(n))))

    @env.task
    def sync_calls(x: int) -> list[int]:
        return [add(x), add.override(retries=2)(x, 5)]

    @env.task
    async def call_fails() -> list[str]:
        try:
            await add(1)
        except fl.errors.TaskFailedError as e:
            return [type(e).__name__, e.task, e.action, str(e.attempt), e.cause_type, str(e), e.traceback_text]
        return []
    """
)


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    path = tmp_path / "execute_tasks.py"
    path.write_text(SOURCE)
    return path


def template(path: Path, name: str, **resolve: Any) -> tasks_pb2.TaskTemplate:
    task = find_task(load_file(path), name)
    return task_template(task, task.resolved(**resolve))


def inputs(path: Path, name: str, **values: Any) -> bytes:
    task = find_task(load_file(path), name)
    return encode_values(task.interface.bind((), values, task=name), task.interface.inputs, where=name)


def outputs(path: Path, name: str, result: ExecuteResult) -> Any:
    assert result.error is None, result.error
    assert result.outputs is not None
    task = find_task(load_file(path), name)
    return task.interface.result(decode_values(result.outputs, task.interface.outputs, where=name))


def run(
    path: Path, name: str, submitter: Any = None, cache: ExecuteCache | None = None, **values: Any
) -> ExecuteResult:
    request = ExecuteInput(
        template=template(path, name),
        inputs=inputs(path, name, **values),
        code_file=str(path),
        submitter=submitter,
        cache=cache or ExecuteCache(),
    )
    return asyncio.run(execute(request))


def test_async_and_sync_tasks_return_literal_outputs(module_file: Path) -> None:
    assert outputs(module_file, "add", run(module_file, "add", x=2)) == 3
    assert outputs(module_file, "pair", run(module_file, "pair", words=["a", "b"])) == (2, "a-b")


def test_a_module_named_in_the_template_is_imported_when_there_is_no_file(module_file: Path) -> None:
    request = ExecuteInput(template=template(module_file, "add"), inputs=inputs(module_file, "add", x=5))
    assert request.template.config["flytelike.module"] == "execute_tasks"
    assert outputs(module_file, "add", asyncio.run(execute(request))) == 6


def test_a_task_error_is_user_with_a_traceback_starting_at_the_task(module_file: Path) -> None:
    error = run(module_file, "fails", n=3).error
    assert error is not None
    assert (error.kind, error.type_name, error.message) == (Kind.USER, "ValueError", "bad 3")
    assert error.traceback.splitlines()[1].startswith(f'  File "{module_file}"')


def test_memory_error_is_oom(module_file: Path) -> None:
    error = run(module_file, "greedy").error
    assert error is not None
    assert (error.kind, error.type_name) == (Kind.OOM, "MemoryError")


def test_failures_before_the_task_runs_are_setup_errors(module_file: Path) -> None:
    good = ExecuteInput(
        template=template(module_file, "add"), inputs=inputs(module_file, "add", x=1), code_file=str(module_file)
    )

    def error_of(request: ExecuteInput) -> worker_pb2.Error:
        result = asyncio.run(execute(request))
        assert result.error is not None
        assert result.outputs is None
        assert result.error.kind == Kind.SETUP
        return result.error

    missing = tasks_pb2.TaskTemplate()
    missing.CopyFrom(good.template)
    missing.id.name = "ex.nope"
    assert (
        "no task named 'ex.nope'"
        in error_of(ExecuteInput(template=missing, inputs=b"", code_file=str(module_file))).message
    )
    bad_inputs = error_of(ExecuteInput(template=good.template, inputs=b"\xff", code_file=str(module_file)))
    assert bad_inputs.type_name == "flytelike.errors.ValueConversionError"
    no_file = error_of(ExecuteInput(template=good.template, inputs=b"", code_file="/nonexistent.py"))
    assert (no_file.type_name, no_file.message) == ("flytelike.errors.LoadError", "/nonexistent.py: no such file")


def test_a_template_made_from_other_code_is_refused(module_file: Path, tmp_path: Path) -> None:
    stale = template(module_file, "add")
    edited = tmp_path / "elsewhere" / "execute_tasks.py"
    edited.parent.mkdir()
    edited.write_text(SOURCE.replace("return x + y", "return x - y"))
    result = asyncio.run(
        execute(ExecuteInput(template=stale, inputs=inputs(module_file, "add", x=1), code_file=str(edited)))
    )
    assert result.error is not None
    assert result.error.kind == Kind.SETUP
    assert "is not the code this version was made from" in result.error.message


def test_templates_of_a_with_platform_or_an_override_pass_the_version_check(module_file: Path) -> None:
    for variant in (
        template(module_file, "add", with_platform=parse_platform_spec("local:process=true")),
        task_template(find_task(load_file(module_file), "add").override(retries=4)),
    ):
        assert variant.id.version != template(module_file, "add").id.version
        request = ExecuteInput(template=variant, inputs=inputs(module_file, "add", x=1), code_file=str(module_file))
        assert outputs(module_file, "add", asyncio.run(execute(request))) == 2


class Channel:
    """A controller that answers each call of ``ex.add`` (x + y + 100) from another thread, last call first."""

    def __init__(self, path: Path, expect: int, error: worker_pb2.Error | None = None) -> None:
        self.add = find_task(load_file(path), "add")
        self.expect = expect
        self.error = error
        self.sent: list[worker_pb2.SubmitChild] = []
        self._pending: list[tuple[worker_pb2.SubmitChild, Deliver]] = []
        self.cancelled: list[int] = []
        self.abandoned: list[str] = []

    def submit(self, message: worker_pb2.SubmitChild, deliver: Deliver) -> None:
        self.sent.append(message)
        self._pending.append((message, deliver))
        if len(self._pending) == self.expect or len(self.sent) >= self.expect:
            pending, self._pending = self._pending, []
            threading.Thread(target=self._answer, args=(pending,)).start()

    def _answer(self, pending: list[tuple[worker_pb2.SubmitChild, Deliver]]) -> None:
        for message, deliver in reversed(pending):
            if self.error is not None:
                deliver(worker_pb2.ChildResult(call=message.call, error=self.error))
                continue
            values = decode_values(message.inputs, self.add.interface.inputs, where="add")
            data = encode_values({"o0": values["x"] + values["y"] + 100}, self.add.interface.outputs, where="add")
            deliver(worker_pb2.ChildResult(call=message.call, outputs=data))

    def cancel(self, call: int) -> None:
        self.cancelled.append(call)

    def abandon(self, reason: str) -> None:
        self.abandoned.append(reason)


def test_calls_of_an_async_task_are_numbered_in_call_order_with_the_childs_template(module_file: Path) -> None:
    channel = Channel(module_file, expect=5)
    children = Children(channel, "0.4")
    assert outputs(module_file, "fan", run(module_file, "fan", submitter=children, n=5)) == [110 + i for i in range(5)]
    add = template(module_file, "add")
    assert [(m.call, m.child_action_id, m.task) for m in channel.sent] == [
        (i, f"0.4.{i}", f"ex.add@{add.id.version}") for i in range(5)
    ]
    assert tasks_pb2.TaskTemplate.FromString(channel.sent[0].template) == add


def test_a_sync_task_blocks_for_each_call_and_sends_an_override_as_itself(module_file: Path) -> None:
    channel = Channel(module_file, expect=1)
    result = run(module_file, "sync_calls", submitter=Children(channel, "0"), x=3)
    assert outputs(module_file, "sync_calls", result) == [104, 108]
    plain, override = (tasks_pb2.TaskTemplate.FromString(m.template) for m in channel.sent)
    assert (plain.metadata.retries.retries, override.metadata.retries.retries) == (0, 2)
    assert channel.sent[1].task == f"ex.add@{override.id.version}" != channel.sent[0].task


def test_a_child_error_is_raised_as_task_failed_error_with_its_fields(module_file: Path) -> None:
    error = worker_pb2.Error(
        kind=Kind.TIMEOUT,
        type_name="flytelike.errors.TaskTimeoutError",
        message="task ex.add (action 0.0, attempt 2/2) timed out",
        traceback="Traceback (most recent call last):\n  boom\n",
        task="ex.add",
        action_id="0.0",
        attempt=2,
        cause_type="builtins.TimeoutError",
    )
    result = run(module_file, "call_fails", submitter=Children(Channel(module_file, 1, error), "0"))
    name, task, action, attempt, cause, message, tb = outputs(module_file, "call_fails", result)
    assert (name, task, action, attempt, cause) == ("TaskTimeoutError", "ex.add", "0.0", "2", "builtins.TimeoutError")
    assert message == error.message
    assert "boom" in tb


def test_without_a_submitter_calls_are_plain_function_calls(module_file: Path) -> None:
    assert outputs(module_file, "fan", run(module_file, "fan", n=3)) == [10, 11, 12]
