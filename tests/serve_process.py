"""Helpers of the tests that drive real processes: a ``flytelike serve`` process, a ``flytelike emulator
kubernetes`` process, and the CLI against them. Client and server have separate homes, so code reaches the server
only through its BlobService."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TOKEN = "e2e-token"
SUBPROCESS = '["subprocess=flytelike.testing:SubprocessBackend.from_input"]'


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    address: str
    log: Path
    home: Path

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(
    home: Path,
    log: Path,
    *,
    backends: str = SUBPROCESS,
    bind: str = "127.0.0.1:0",
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Server:
    """Start ``flytelike serve``; with ``wait``, return once it listens (else at once, its address being ``bind``)."""
    environ = {
        **os.environ,
        "FLYTELIKE_HOME": str(home),
        "FLYTELIKE_SERVE__TOKEN": TOKEN,
        "FLYTELIKE_SERVE__BACKENDS": backends,
        **(env or {}),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flytelike", "serve", "--bind", bind], env=environ, stderr=out, stdout=out
        )
    if not wait:
        return Server(process, bind, log, home)
    seen = log.read_text().count("listening on ")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = [line for line in log.read_text().splitlines() if "listening on " in line]
        if len(lines) > seen:
            return Server(process, lines[-1].rsplit(" ", 1)[1], log, home)
        if process.poll() is not None:
            raise AssertionError(f"flytelike serve exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"flytelike serve did not start:\n{log.read_text()}")


class Emulator:
    """``flytelike emulator kubernetes`` in a process of its own, registered in ``home`` (servers of that home
    find it)."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home = home
        self.log = log
        env = {**os.environ, "FLYTELIKE_HOME": str(home)}
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flytelike", "emulator", "kubernetes"], env=env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 30
        while "registered in" not in log.read_text():
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)

    def _request(self, path: str, method: str = "GET") -> Any:
        registration = json.loads((self.home / "emulators" / "kubernetes.json").read_text())
        kubeconfig = yaml.safe_load(Path(registration["kubeconfig"]).read_text())
        url = kubeconfig["clusters"][0]["cluster"]["server"]
        token = kubeconfig["users"][0]["user"].get("token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(url + path, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def counters(self) -> dict[str, Any]:
        """The emulator's request counters and pods created by name (``/emulator/counters``)."""
        counters: dict[str, Any] = self._request("/emulator/counters")
        return counters

    def pod_names(self, namespace: str = "default") -> list[str]:
        pods = self._request(f"/api/v1/namespaces/{namespace}/pods")
        return [pod["metadata"]["name"] for pod in pods["items"]]

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        """Delete a pod as someone else would (kubectl delete pod)."""
        self._request(f"/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0", method="DELETE")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class BatchEmulatorProcess:
    """``flytelike emulator batch`` in a process of its own, registered in ``home`` (servers of that home find it)."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home = home
        self.log = log
        env = {**os.environ, "FLYTELIKE_HOME": str(home)}
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flytelike", "emulator", "batch"], env=env, stdout=out, stderr=out
            )
        registration = home / "emulators" / "batch.json"
        deadline = time.monotonic() + 60
        while not registration.exists():
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        self.details: dict[str, Any] = json.loads(registration.read_text())

    def job_names(self) -> list[str]:
        """The name of every job on the emulator's queue, whatever its status (a name twice: submitted twice)."""
        import boto3  # a test dependency (moto's); only this helper needs it

        d = self.details
        batch = boto3.client(
            "batch",
            endpoint_url=d["endpoint_url"],
            region_name=d["region"],
            aws_access_key_id=d["access_key_id"],
            aws_secret_access_key=d["secret_access_key"],
        )
        names: list[str] = []
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
            pages = batch.get_paginator("list_jobs").paginate(jobQueue=d["queue"], jobStatus=status)
            names += [job["jobName"] for page in pages for job in page["jobSummaryList"]]
        return names

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def cli(
    server: Server, project: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "FLYTELIKE_HOME": str(project.parent / "client-home"),
        "FLYTELIKE_REMOTE__ENDPOINT": server.address,
        "FLYTELIKE_REMOTE__TOKEN": TOKEN,
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "flytelike", *args],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
