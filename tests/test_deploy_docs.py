"""What docs/deploy.md shows of the deployment: its settings tables give the values the manifest and the image set,
and its NetworkPolicy passes ``kubernetes-validate`` (strict), guards the server's pod and lets in, on the server's
one port, the pods the Kubernetes backend makes and no other pod.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from test_deploy_manifests import K8S_VERSIONS, ROOT, bind_port, env, image_env, port_of, the

import flytelike as fl
from flytelike._backends.kubernetes._manifest import PodInput, pod_manifest
from flytelike._backends.kubernetes._names import pod_name
from flytelike._config import Settings, load_settings
from flytelike._config._schema import variable_names
from flytelike._remote._control import executor_name
from flytelike._remote._state import database_url
from flytelike._serde import task_template

DOCS = ROOT / "docs" / "deploy.md"


def _docs_table_rows() -> dict[str, list[str]]:
    """The rows of docs/deploy.md's settings tables, by the variable named in their second column."""
    rows: dict[str, list[str]] = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 3 and re.fullmatch(r"`FLYTELIKE_\w+`", cells[1]):
            rows[cells[1].strip("`")] = cells
    return rows


def test_the_docs_settings_tables_show_the_values_the_deployment_sets() -> None:
    rows = _docs_table_rows()
    known = variable_names(Settings, "FLYTELIKE_") | {"FLYTELIKE_HOME"}
    assert set(rows) <= known, f"the tables name {sorted(set(rows) - known)}, which are no settings"
    literal = {name: entry["value"] for name, entry in env().items() if "value" in entry} | image_env()
    shown = 0
    for name, cells in rows.items():
        value = re.match(r"`([^`]*)`", cells[2])
        if name in literal and value and "..." not in value.group(1):
            assert value.group(1) == literal[name], name
            shown += 1
    assert shown >= 3  # the home, the controller's address and the namespace at least


# --- the NetworkPolicy of docs/deploy.md -----------------------------------------------------------------------------


def _docs_documents(kind: str) -> list[dict[str, Any]]:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    found = [d for block in blocks for d in yaml.safe_load_all(block) if isinstance(d, dict)]
    return [d for d in found if d.get("kind") == kind]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector's verdict on a set of labels, as the API server reads one."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        verdict = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not verdict:
            return False
    return True


def _admits(policy: dict[str, Any], *, namespace: str, labels: dict[str, str], port: int) -> bool:
    """Whether one of the policy's ingress rules lets a pod (its namespace's name and its labels) reach ``port`` of
    the pods the policy selects; ipBlock peers are addresses, which no pod here has."""
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    own = policy["metadata"]["namespace"]
    for rule in policy["spec"].get("ingress", []):
        ports = rule.get("ports")
        if ports is not None and not any(
            port_of(p["port"]) == port and p.get("protocol", "TCP") == "TCP" for p in ports
        ):
            continue
        peers = rule.get("from")
        if peers is None:
            return True
        for peer in peers:
            if "ipBlock" in peer:
                continue
            if "namespaceSelector" in peer:
                in_namespace = _selects(peer["namespaceSelector"], namespace_labels)
            else:
                in_namespace = namespace == own
            if in_namespace and _selects(peer.get("podSelector", {}), labels):
                return True
    return False


def _task_pod_labels() -> dict[str, str]:
    """The labels of a pod the Kubernetes backend makes for an attempt, with the manifest's settings."""
    variables = {name: entry["value"] for name, entry in env().items() if "value" in entry}
    settings = load_settings(kubernetes={"namespace": variables["FLYTELIKE_KUBERNETES__NAMESPACE"]})
    environment = fl.TaskEnvironment(name="deploy-policy")

    async def work(x: int) -> int:
        return x

    work.__module__ = __name__
    task = environment.task(work)
    database = database_url(settings.serve.database, home=Path(image_env()["FLYTELIKE_HOME"]))
    pod = pod_manifest(
        PodInput(
            template=task_template(task, task.resolved(fl.Kubernetes())),
            name=pod_name("r20261201-101010-abcdef", "0.1", 1),
            run="r20261201-101010-abcdef",
            action="0.1",
            attempt=1,
            executor=executor_name(database),
            command=["flytelike-entry"],
            env={},
            settings=settings.kubernetes,
        )
    )
    return dict(pod["metadata"]["labels"])


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_docs_network_policy_passes_strict_validation(version: str) -> None:
    (policy,) = _docs_documents("NetworkPolicy")
    kubernetes_validate.validate(policy, version, strict=True)


def test_the_docs_network_policy_guards_the_servers_pod() -> None:
    (policy,) = _docs_documents("NetworkPolicy")
    assert policy["metadata"]["namespace"] == the("Namespace")["metadata"]["name"]
    pod_labels = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _selects(policy["spec"]["podSelector"], pod_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_the_docs_network_policy_lets_task_pods_reach_the_servers_port_and_nothing_else() -> None:
    (policy,) = _docs_documents("NetworkPolicy")
    namespace = env()["FLYTELIKE_KUBERNETES__NAMESPACE"]["value"]
    task_pod = _task_pod_labels()
    assert _admits(policy, namespace=namespace, labels=task_pod, port=bind_port())
    assert not _admits(policy, namespace=namespace, labels=task_pod, port=bind_port() + 1)
    # Any other pod of the namespace, and the task pods' labels in another namespace, are kept out.
    assert not _admits(policy, namespace=namespace, labels={"app": "something-else"}, port=bind_port())
    assert not _admits(policy, namespace="elsewhere", labels=task_pod, port=bind_port())


def test_the_policy_check_reads_selectors_as_the_api_server_does() -> None:
    assert _selects({}, {"a": "1"})
    assert _selects({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not _selects({"matchLabels": {"a": "1"}}, {"a": "2"})
    assert _selects({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""})
    assert not _selects({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"b": "1"})
    assert _selects({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {})
    assert not _selects({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {})
