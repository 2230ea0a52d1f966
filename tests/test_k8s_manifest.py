"""Pod manifests: every task of the examples gives a pod that the Kubernetes schema accepts in strict mode, and the
mapping of resources, accelerators, shared memory, timeouts, secrets and the platform's settings is exact."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from kubernetes.aio import client, config

import flytelike as fl
from flytelike._backends.kubernetes._manifest import PodInput, pod_manifest
from flytelike._backends.kubernetes._names import label_value, pod_name
from flytelike._cli import cli
from flytelike._config import load_settings
from flytelike._loader import load_file, tasks_in
from flytelike._serde import task_template
from flytelike._task import Task
from flytelike.testing.kubernetes import KubernetesEmulator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted([*ROOT.glob("examples/*.py"), *ROOT.glob("examples/seeds/*.py")])
K8S_VERSION = "1.33"


def _manifest(task: Task[..., Any], *, memory: int = 0, **settings: Any) -> dict[str, Any]:
    template = task_template(task, task.resolved(fl.Kubernetes()))
    return pod_manifest(
        PodInput(
            template=template,
            name=pod_name("r20261201-101010-abcdef", "0.3", 1),
            run="r20261201-101010-abcdef",
            action="0.3",
            attempt=1,
            executor="laptop-1234-abcdef",
            command=["flytelike-entry", "--run", "r20261201-101010-abcdef"],
            env={"FLYTELIKE_STORE__URL": "s3://bucket/prefix"},
            settings=load_settings(kubernetes=settings).kubernetes,
            memory=memory,
        )
    )


def _example_tasks() -> list[Any]:
    params = []
    for path in EXAMPLES:
        module = load_file(path)
        seen: set[int] = set()
        for task in tasks_in(module).values():
            platform = task.resolved(None).platform
            if id(task) in seen or (platform is not None and platform.name != "kubernetes"):
                continue  # pinned elsewhere: it never becomes a pod
            seen.add(id(task))
            params.append(pytest.param(task, id=f"{path.stem}:{task.full_name}"))
    return params


@pytest.mark.parametrize("task", _example_tasks())
def test_every_example_task_gives_a_valid_pod(task: Task[..., Any]) -> None:
    manifest = _manifest(task)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    container = manifest["spec"]["containers"][0]
    assert manifest["spec"]["restartPolicy"] == "Never"
    requests = container.get("resources", {}).get("requests", {})
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in requests:
        assert limits["memory"] == requests["memory"]  # memory limit = request unless given
    for name, value in requests.items():
        if "/" in name:  # extended resources: integers, requests == limits
            assert value.isdigit()
            assert limits[name] == value


env = fl.TaskEnvironment(name="k8s-map")


def _task(**kwargs: Any) -> Task[..., Any]:
    e = fl.TaskEnvironment(name=f"k8s-map-{len(kwargs)}-{abs(hash(repr(sorted(kwargs.items())))) % 10**6}", **kwargs)

    async def work(x: int) -> int:
        return x

    work.__module__ = __name__
    return e.task(work)


def test_cpu_memory_and_disk() -> None:
    m = _manifest(_task(resources=fl.Resources(cpu="1500m", memory="3Gi", disk="50Gi")))
    res = m["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "1500m", "memory": "3Gi", "ephemeral-storage": "50Gi"}
    assert res["limits"] == {"memory": "3Gi", "ephemeral-storage": "50Gi"}  # no cpu limit unless given


def test_an_escalated_attempt_gets_its_memory() -> None:
    m = _manifest(_task(resources=fl.Resources(memory="1Gi")), memory=2 * 1024**3)
    res = m["spec"]["containers"][0]["resources"]
    assert res["requests"]["memory"] == res["limits"]["memory"] == "2Gi"


@pytest.mark.parametrize(
    ("gpu", "resource", "selector"),
    [
        (fl.GPU("A100", 2), "nvidia.com/gpu", {"nvidia.com/gpu.product": "nvidia-tesla-a100"}),
        (
            fl.GPU("A100 80G", 1, partition="1g.10gb"),
            "nvidia.com/mig-1g.10gb",
            {"nvidia.com/gpu.product": "nvidia-a100-80gb"},
        ),
    ],
)
def test_gpus(gpu: Any, resource: str, selector: dict[str, str]) -> None:
    m = _manifest(_task(resources=fl.Resources(gpu=gpu)))
    res = m["spec"]["containers"][0]["resources"]
    assert res["requests"][resource] == res["limits"][resource]
    assert m["spec"]["nodeSelector"] == selector
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in m["spec"]["tolerations"]
    kubernetes_validate.validate(m, K8S_VERSION, strict=True)


def test_mig_single_strategy_is_a_node_label() -> None:
    m = _manifest(_task(resources=fl.Resources(gpu=fl.GPU("A100 80G", 1, partition="1g.10gb"))), mig_strategy="single")
    assert m["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "nvidia-a100-80gb-MIG-1g.10gb"}
    assert m["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"


def test_shared_memory_timeout_and_platform_settings() -> None:
    task = _task(
        resources=fl.Resources(cpu=1, memory="1Gi", shm="512Mi"),
        platform=fl.Kubernetes(
            namespace="ml",
            service_account="trainer",
            node_selector={"pool": "cpu"},
            labels={"team": "search"},
            annotations={"cost-center": "42"},
            image_pull_policy="Always",
        ),
        timeout=90,
    )
    m = _manifest(task)
    spec, container = m["spec"], m["spec"]["containers"][0]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}} in spec["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert spec["activeDeadlineSeconds"] == 90
    assert spec["serviceAccountName"] == "trainer"
    assert spec["nodeSelector"] == {"pool": "cpu"}
    assert m["metadata"]["namespace"] == "ml"
    assert m["metadata"]["labels"]["team"] == "search"
    assert m["metadata"]["labels"]["flytelike.io/action"] == "0.3"
    assert m["metadata"]["annotations"] == {"cost-center": "42"}
    assert container["imagePullPolicy"] == "Always"
    kubernetes_validate.validate(m, K8S_VERSION, strict=True)


def test_secrets_are_secret_key_refs() -> None:
    task = _task(secrets=[fl.Secret(group="db-creds", key="password", env_var="DB_PASSWORD")])
    env_vars = _manifest(task)["spec"]["containers"][0]["env"]
    assert {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}} in env_vars


def test_pod_names_are_valid_and_distinct() -> None:
    assert pod_name("r1", "0", 2) == "fl-r1-0-2"
    assert pod_name("r1", "0.1", 2).startswith("fl-r1-0-1-2-")
    long = pod_name("my-very-long-run-name-" + "x" * 60, "0.1.2.3.4.5.6.7.8.9", 12)
    assert len(long) <= 63
    assert long != pod_name("my-very-long-run-name-" + "x" * 60, "0.1.2.3.4.5.6.7.8.9", 13)
    assert pod_name("Run_With_Caps", "0", 1) != pod_name("run-with-caps", "0", 1)
    assert label_value("a" * 80) != label_value("a" * 81)
    assert len(label_value("a" * 80)) <= 63


def test_module_is_importable() -> None:
    assert sys.modules[__name__]


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_show_as_kubernetes_prints_a_valid_pod(output: str) -> None:
    result = CliRunner().invoke(
        cli, ["show", str(ROOT / "examples" / "train.py"), "train", "--as", "kubernetes", "-o", output]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output) if output == "json" else yaml.safe_load(result.output)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    command = manifest["spec"]["containers"][0]["command"]
    assert command[0] == "flytelike-entry"
    assert command[command.index("--task") + 1] == "examples.train:training.train"


def test_show_as_kubernetes_refuses_a_task_pinned_elsewhere(tmp_path: Path) -> None:
    file = tmp_path / "pinned.py"
    file.write_text(
        "import flytelike as fl\n"
        "env = fl.TaskEnvironment(name='pinned', platform=fl.Batch(queue='q'))\n"
        "@env.task\n"
        "async def job() -> int:\n"
        "    return 1\n"
    )
    result = CliRunner().invoke(cli, ["show", str(file), "job", "--as", "kubernetes"])
    assert result.exit_code == 2
    assert "pinned to platform 'batch'" in result.output


async def test_every_example_pod_is_accepted_by_the_emulator_s_api_server() -> None:
    manifests = [_manifest(p.values[0]) for p in _example_tasks()]
    namespaces = sorted({m["metadata"]["namespace"] for m in manifests})
    async with KubernetesEmulator(namespaces=namespaces) as cluster:
        configuration = client.Configuration()
        await config.load_kube_config(config_file=str(cluster.kubeconfig_path), client_configuration=configuration)
        async with client.ApiClient(configuration) as api:
            core = client.CoreV1Api(api)
            for i, manifest in enumerate(manifests):
                manifest["metadata"]["name"] = f"example-{i}"
                response = await core.create_namespaced_pod_without_preload_content(
                    manifest["metadata"]["namespace"], manifest
                )
                assert response.status == 201, (manifest["metadata"], await response.text())
                response.release()
