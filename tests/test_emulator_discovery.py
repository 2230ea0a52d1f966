"""The documented way to try a cloud path: `flytelike emulator kubernetes|batch` in one terminal, then
`flytelike run --with kubernetes|batch FILE TASK` in another, with nothing exported in between."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTELIKE_", "AWS_", "KUBECONFIG"))}
    env["FLYTELIKE_HOME"] = str(home)
    return env


PRINTS = """
import flytelike as fl

env = fl.TaskEnvironment(name="prints")


@env.task
async def shout(word: str) -> str:
    print(f"shouting {word}", flush=True)
    return word.upper()
"""


def _try(kind: str, home: Path, work: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    env = _clean_env(home)
    log = work / f"emulator-{kind}.log"
    with open(log, "w") as out:
        emulator = subprocess.Popen(
            [sys.executable, "-m", "flytelike", "emulator", kind], env=env, cwd=work, stdout=out, stderr=out
        )
    try:
        registration = home / "emulators" / f"{kind}.json"
        deadline = time.monotonic() + 60
        while not registration.exists():
            assert emulator.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"flytelike emulator {kind} did not register within 60 s"
            time.sleep(0.1)

        def flytelike(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "flytelike", *args],
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )

        fanout = flytelike("run", "--with", kind, str(ROOT / "examples" / "fanout.py"), "main", "--n", "4")
        project = work / "project"
        project.mkdir()
        (project / "pyproject.toml").write_text("[project]\nname = 'prints'\n")
        (project / "prints.py").write_text(PRINTS)
        shouted = flytelike("run", "--with", kind, str(project / "prints.py"), "shout", "--word", "hi")
        assert shouted.returncode == 0, shouted.stderr[-2000:]
        run_id = json.loads(flytelike("runs", "-o", "json").stdout)[0]["id"]
        return fanout, flytelike("logs", run_id).stdout
    finally:
        emulator.send_signal(signal.SIGTERM)
        try:
            emulator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()
        assert not (home / "emulators" / f"{kind}.json").exists()  # unregistered when it stopped


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["kubernetes", "batch"])
def test_the_emulator_is_found_with_nothing_configured(kind: str, tmp_path: Path) -> None:
    home, work = tmp_path / "user-home", tmp_path / "user-work"
    home.mkdir()
    work.mkdir()
    done, logs = _try(kind, home, work)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(sum(i * i for i in range(4)))  # as the local run gives
    assert "shouting hi" in logs  # `flytelike logs` shows what the pod or the job printed
