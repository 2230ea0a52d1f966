"""Cache(behavior="override"), Cache(serialize=True), Cache(salt=...), damaged cache entries and files."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flytelike as fl
from flytelike._config import load_settings
from flytelike._storage import RecordStore
from flytelike.errors import RecordWriteError

env = fl.TaskEnvironment(name="cache-behaviors")
CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def states(run_id: str) -> list[str]:
    with RecordStore(load_settings().db_path) as store:
        return [a.state.value for a in store.actions(run_id)]


@env.task(cache=fl.Cache(version="v1"))
async def plain(x: int) -> int:
    CALLS.append("plain")
    return x + len(CALLS)


def test_override_always_runs_and_overwrites_the_cached_value() -> None:
    assert fl.run(plain, 1).outputs == 2
    refresh = plain.override(cache=fl.Cache(version="v1", behavior="override"))
    again = fl.run(refresh, 1)
    assert (again.outputs, states(again.id)) == (3, ["succeeded"])
    assert fl.run(refresh, 1).outputs == 4  # never a lookup
    hit = fl.run(plain, 1)  # the plain task now finds the value the override wrote
    assert (hit.outputs, states(hit.id)) == (4, ["cached"])
    assert CALLS == ["plain"] * 3
    assert fl.Cache.of("override") == fl.Cache(behavior="override")


def test_salt_changes_the_key_but_not_the_version() -> None:
    fl.run(plain, 1)
    salted = plain.override(cache=fl.Cache(version="v1", salt="2024-06"))
    assert states(fl.run(salted, 1).id) == ["succeeded"]
    assert states(fl.run(salted, 1).id) == ["cached"]
    assert states(fl.run(plain, 1).id) == ["cached"]
    assert len(CALLS) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"behavior": "sometimes"}, "Cache.behavior"),
        ({"serialize": "yes"}, "Cache.serialize"),
        ({"salt": 3}, "Cache.salt"),
    ],
)
def test_cache_options_are_checked(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(fl.SpecError) as info:
        fl.Cache(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert fl.Cache(behavior="disable").enabled is False


@env.task(cache=fl.Cache(serialize=True))
async def slow_once(x: int) -> int:
    CALLS.append("slow")
    await asyncio.sleep(0.2)
    return x * 10


@env.task
async def fan(x: int, n: int = 4) -> list[int]:
    return list(await asyncio.gather(*(slow_once(x) for _ in range(n))))


def test_serialize_computes_once_while_the_others_wait() -> None:
    handle = fl.run(fan, 3)
    assert handle.outputs == [30, 30, 30, 30]
    assert CALLS == ["slow"]
    assert sorted(states(handle.id)) == ["cached", "cached", "cached", "succeeded", "succeeded"]


def test_without_serialize_concurrent_misses_all_compute() -> None:
    unserialized = slow_once.override(cache=fl.Cache())

    @env.task(name="fan_plain")
    async def fan_plain(x: int) -> list[int]:
        return list(await asyncio.gather(*(unserialized(x) for _ in range(3))))

    fl.run(fan_plain, 3)
    assert CALLS == ["slow"] * 3


SERIALIZED = """
    import sys, time
    from pathlib import Path
    import flytelike as fl

    env = fl.TaskEnvironment(name="serialized-across-runs")

    @env.task(cache=fl.Cache(serialize=True))
    def compute(x: int) -> int:
        with open(sys.argv[1], "a") as f:
            f.write("computed\\n")
        time.sleep(1.0)
        return x * 2

    if __name__ == "__main__":
        print(fl.run(compute, 21).outputs)
"""


def test_serialize_holds_across_runs_in_other_processes(tmp_path: Path) -> None:
    script = tmp_path / "serialized.py"
    script.write_text(textwrap.dedent(SERIALIZED))
    log = tmp_path / "log.txt"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert [o.strip() for o, _ in outs] == ["42", "42", "42"]
    assert log.read_text() == "computed\n"


def test_a_damaged_cache_entry_is_a_miss() -> None:
    fl.run(plain, 1)
    path = load_settings().home / "cache.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE cache SET data = ?", (b"\xff\x00 not outputs",))
    rerun = fl.run(plain, 1)
    assert (rerun.outputs, states(rerun.id)) == (3, ["succeeded"])
    assert states(fl.run(plain, 1).id) == ["cached"]  # the rerun replaced the damaged entry
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE cache SET data = 'text, not bytes'")
    assert states(fl.run(plain, 1).id) == ["succeeded"]


def test_a_corrupt_cache_file_names_itself_and_how_to_move_it_aside() -> None:
    path = load_settings().home / "cache.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(RecordWriteError) as info:
        fl.run(plain, 1)
    message = str(info.value)
    assert str(path) in message
    assert "not a database" in message
    assert f"mv {path} {path}.corrupt" in message


def test_a_corrupt_records_file_names_itself_and_how_to_move_it_aside() -> None:
    path = load_settings().db_path
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(RecordWriteError) as info:
        fl.run(plain, 1)
    assert str(path) in str(info.value)
    assert f"mv {path} {path}.corrupt" in str(info.value)
    assert CALLS == []
