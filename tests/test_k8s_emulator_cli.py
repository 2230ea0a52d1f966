"""``flytelike emulator kubernetes`` and the nodes file it reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from kubernetes.aio import client, config

from flytelike._backends.kubernetes._emulated import registration_path, running_emulator
from flytelike._cli import cli
from flytelike.testing.kubernetes import NodeSpec, load_nodes

ROOT = Path(__file__).resolve().parents[1]
NODES = """\
- name: big-gpu
  capacity: {cpu: 16, memory: 64Gi, nvidia.com/gpu: 4}
  allocatable: {cpu: 15500m}
  labels: {nvidia.com/gpu.product: NVIDIA-H100}
  taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
"""


def test_nodes_file(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(NODES)
    (node,) = load_nodes(path)
    assert node == NodeSpec(
        "big-gpu",
        {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"},
        {"cpu": "15500m"},
        {"nvidia.com/gpu.product": "NVIDIA-H100"},
        ({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},),
    )
    registered = node.node_object(kubelet_port=1)
    assert registered["status"]["allocatable"]["cpu"] == "15500m"
    assert registered["status"]["allocatable"]["memory"] == "64Gi"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- name: a\n", "node 0 needs at least 'name' and 'capacity'"),
        ("- {name: a, capacity: {cpu: 1}, gpus: 2}\n", "unknown keys ['gpus']; accepted: name, capacity"),
        ("- {name: a, capacity: {memory: 4GiB}}\n", "unknown suffix 'GiB'"),
        ("- {name: A_1, capacity: {cpu: 1}}\n", "name must be a DNS subdomain"),
        ("- {name: a, capacity: {cpu: 1}, taints: [{key: k}]}\n", "needs a key and an effect"),
        ("{}\n", "expected a non-empty list of nodes"),
    ],
)
def test_bad_nodes_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_nodes(path)


def test_the_cli_refuses_a_bad_nodes_file(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text("- {name: a, capacity: {cpu: lots}}\n")
    result = CliRunner().invoke(cli, ["emulator", "kubernetes", "--nodes", str(path)])
    assert result.exit_code == 2
    assert "lots" in result.output


def test_importing_the_cli_and_testing_does_not_load_aiohttp() -> None:
    code = "import sys, flytelike._cli._emulator, flytelike.testing; print('aiohttp' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert done.stdout.strip() == "False"


async def test_the_cli_serves_until_sigterm(tmp_path: Path, isolated_config: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(NODES)
    command = [
        sys.executable,
        "-c",
        "from flytelike._cli import main; main()",
        "emulator",
        "kubernetes",
        "--nodes",
        str(path),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with await anyio.open_process(command, env=env) as process:
        assert process.stdout is not None
        output = b""
        with anyio.fail_after(20):
            async for chunk in process.stdout:
                output += chunk
                if b"Running until Ctrl-C" in output:
                    break
        text = output.decode()
        assert "NOT a real cluster" in text
        kubeconfig = next(line.split("=", 1)[1] for line in text.splitlines() if "export KUBECONFIG=" in line)
        assert f"export FLYTELIKE_KUBERNETES__KUBECONFIG={kubeconfig}" in text
        # Registered under FLYTELIKE_HOME, so the backend finds it with no cluster configured.
        found = running_emulator(isolated_config)
        assert found is not None
        assert found.kubeconfig == kubeconfig
        assert found.entrypoint == (sys.executable, "-m", "flytelike.entry")
        api = await config.new_client_from_config(kubeconfig)
        async with api:
            nodes = await client.CoreV1Api(api).list_node()
        assert [n.metadata.name for n in nodes.items] == ["big-gpu"]
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            assert await process.wait() == 0
    assert not Path(kubeconfig).exists()  # the emulator cleaned up after itself
    assert not registration_path(isolated_config).exists()
