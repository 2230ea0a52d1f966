"""The emulator's kubelet: pods' commands run as local processes, with their statuses as a real kubelet reports."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import anyio
import pytest
from kubernetes.aio import client, config, watch
from test_k8s_emulator_support import container_state, ended, k8s, manifest, phase, python, v1, waiting_reason

from flytelike.testing import KubernetesEmulator

__all__ = ["k8s", "v1"]


async def test_success_with_logs(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", manifest("ok", python("print('hello'); print('world')")))
    pod = await k8s.wait_for_pod("ok", ended)
    assert phase(pod) == "Succeeded"
    terminated = container_state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert await v1.read_namespaced_pod_log("ok", "default") == "hello\nworld\n"
    assert await v1.read_namespaced_pod_log("ok", "default", tail_lines=1) == "world\n"


async def test_failure_keeps_the_exit_code(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", manifest("bad", python("import sys; sys.exit(3)")))
    pod = await k8s.wait_for_pod("bad", ended)
    assert phase(pod) == "Failed"
    terminated = container_state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


async def test_past_the_memory_limit_is_oomkilled_137(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    hog = "import time\nx = bytearray(300 * 2**20)\nfor i in range(0, len(x), 4096): x[i] = 1\ntime.sleep(5)"
    await v1.create_namespaced_pod("default", manifest("hog", python(hog), limits={"memory": "64Mi"}))
    pod = await k8s.wait_for_pod("hog", ended)
    terminated = container_state(pod)["terminated"]
    assert (phase(pod), terminated["exitCode"], terminated["reason"]) == ("Failed", 137, "OOMKilled")


async def test_active_deadline_fails_the_pod(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", manifest("slow", ["sleep", "30"], activeDeadlineSeconds=1))
    pod = await k8s.wait_for_pod("slow", ended)
    assert (phase(pod), pod["status"]["reason"]) == ("Failed", "DeadlineExceeded")
    assert pod["status"]["message"] == "Pod was active on the node longer than the specified deadline"
    assert container_state(pod)["terminated"]["exitCode"] == 137


async def test_secret_key_ref_env(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"token": base64.b64encode(b"abc").decode()},
    }
    await v1.create_namespaced_secret("default", secret)
    env = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "PLAIN", "value": "x-$(TOKEN)"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    code = "import os; print(os.environ['TOKEN'], os.environ['PLAIN'], os.environ['POD'], 'HOME' in os.environ)"
    await v1.create_namespaced_pod("default", manifest("env", python(code), env=env))
    await k8s.wait_for_pod("env", ended)
    assert await v1.read_namespaced_pod_log("env", "default") == "abc x-abc env False\n"


async def test_a_missing_secret_is_create_container_config_error_until_it_exists(
    k8s: KubernetesEmulator, v1: client.CoreV1Api
) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    await v1.create_namespaced_pod(
        "default", manifest("waits", python("import os; print(os.environ['TOKEN'])"), env=env)
    )
    pod = await k8s.wait_for_pod("waits", lambda p: waiting_reason(p) == "CreateContainerConfigError")
    assert container_state(pod)["waiting"]["message"] == 'secret "later" not found'
    assert phase(pod) == "Pending"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"}, "stringData": {"token": "now"}}
    await v1.create_namespaced_secret("default", secret)
    await k8s.wait_for_pod("waits", ended)
    assert await v1.read_namespaced_pod_log("waits", "default") == "now\n"


async def test_invalid_and_missing_images() -> None:
    async with KubernetesEmulator(missing_images={"ghcr.io/acme/gone:1"}) as k8s:
        api = await config.new_client_from_config(str(k8s.kubeconfig_path))
        async with api:
            v1 = client.CoreV1Api(api)
            invalid = manifest("invalid")
            invalid["spec"]["containers"][0]["image"] = "Not A Ref"
            await v1.create_namespaced_pod("default", invalid)
            missing = manifest("missing")
            missing["spec"]["containers"][0]["image"] = "ghcr.io/acme/gone:1"
            await v1.create_namespaced_pod("default", missing)
            pod = await k8s.wait_for_pod("invalid", lambda p: waiting_reason(p) == "InvalidImageName")
            assert container_state(pod)["waiting"]["message"].endswith(
                'couldn\'t parse image name "Not A Ref": invalid reference format'
            )
            await k8s.wait_for_pod("missing", lambda p: waiting_reason(p) == "ErrImagePull")
            pod = await k8s.wait_for_pod("missing", lambda p: waiting_reason(p) == "ImagePullBackOff")
            assert container_state(pod)["waiting"]["message"] == 'Back-off pulling image "ghcr.io/acme/gone:1"'
            assert phase(pod) == "Pending"


async def test_logs_stream_while_the_pod_runs(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    code = (
        "import sys, time\nprint('first', flush=True)\nsys.stdin = None\ntime.sleep(0.6)\nprint('second', flush=True)"
    )
    await v1.create_namespaced_pod("default", manifest("talk", python(code)))
    await k8s.wait_for_pod("talk", lambda p: phase(p) == "Running")
    lines = []
    async with watch.Watch(return_type="str") as w:
        async for line in w.stream(v1.read_namespaced_pod_log, "talk", "default"):
            lines.append((line, phase(k8s.pod("talk"))))
    assert lines[0] == ("first\n", "Running")  # received while it still ran
    assert [text for text, _ in lines] == ["first\n", "second\n"]


async def test_deleting_a_pod_stops_its_process_gracefully(
    k8s: KubernetesEmulator, v1: client.CoreV1Api, tmp_path: Path
) -> None:
    mark = tmp_path / "terminated"
    code = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(mark)!r}, 'w').close(), sys.exit(0)))\n"
        "print('up', flush=True)\n"
        "time.sleep(30)"
    )
    await v1.create_namespaced_pod("default", manifest("victim", python(code)))
    await k8s.wait_for_pod("victim", lambda p: phase(p) == "Running")
    await until_printed(v1, "victim")
    deleted = await v1.delete_namespaced_pod("victim", "default", grace_period_seconds=5)
    assert deleted.metadata.deletion_timestamp is not None  # graceful: the pod stays until its kubelet is done
    await k8s.wait_for_pod("victim", lambda p: p is None)
    assert mark.exists()  # it got SIGTERM and ran its handler
    killing = [e["message"] for e in k8s.events() if e["reason"] == "Killing"]
    assert killing == ["Stopping container main"]


async def test_sigkill_after_the_grace_period(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    code = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(30)"
    )
    await v1.create_namespaced_pod("default", manifest("stubborn", python(code)))
    await k8s.wait_for_pod("stubborn", lambda p: phase(p) == "Running")
    pid = int(await until_printed(v1, "stubborn"))
    start = time.monotonic()
    with anyio.fail_after(5):
        await v1.delete_namespaced_pod("stubborn", "default", grace_period_seconds=1)
        await k8s.wait_for_pod("stubborn", lambda p: p is None)
    assert time.monotonic() - start >= 1  # the grace period was given
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def until_printed(v1: client.CoreV1Api, name: str) -> str:
    """The pod's first line of output, once it has printed one (so its signal handler is in place)."""
    with anyio.fail_after(5):
        while True:
            text = await v1.read_namespaced_pod_log(name, "default")
            if text.endswith("\n"):
                return str(text.splitlines()[0])
            await anyio.sleep(0.05)


async def test_leaving_the_emulator_kills_running_pods() -> None:
    async with KubernetesEmulator() as k8s:
        api = await config.new_client_from_config(str(k8s.kubeconfig_path))
        async with api:
            v1 = client.CoreV1Api(api)
            await v1.create_namespaced_pod(
                "default", manifest("left", python("import os, time; print(os.getpid(), flush=True); time.sleep(30)"))
            )
            await k8s.wait_for_pod("left", lambda p: phase(p) == "Running")
            pid = int(await until_printed(v1, "left"))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
