"""The deployment of ``flytelike serve`` (``deploy/``): every document of the Kubernetes manifest passes
``kubernetes-validate`` (strict); its Role grants exactly the requests the Kubernetes backend makes (the list below,
which a scan of the backend's code keeps honest); its parts agree with each other and with the settings (one port
for clients and task pods, names, namespace, variables); the image runs ``flytelike serve`` as a non-root user, with
extras that exist and files that are enough to build the package, and serves RunService and the controller's
ActionService on that one port. What docs/deploy.md shows of them is checked in test_deploy_docs.py.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import grpc
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flytelike._config import Settings, load_settings
from flytelike._config._schema import variable_names
from flytelike._proto.remote.v1 import actions_pb2, actions_pb2_grpc, runs_pb2, runs_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "deploy" / "kubernetes" / "serve.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
BACKEND = ROOT / "flytelike" / "_backends" / "kubernetes"
K8S_VERSIONS = ("1.33", kubernetes_validate.latest_version())

# Every (resource, verb) the Kubernetes backend sends to the API server, read from flytelike/_backends/kubernetes:
# PodApi.create (create_namespaced_pod), PodApi.list and the watch (list_namespaced_pod, once with watch=True),
# PodApi.logs (read_namespaced_pod_log) and PodApi.delete (delete_namespaced_pod). Taking runs over after a restart
# adds nothing: the pods the previous server started are found by the watch's first list (one per namespace, on the
# server's label), and an attempt whose pod is gone has its end read from the store. It reads no secrets (the
# kubelet resolves a pod's secretKeyRef) and no events (scheduling problems come from the pods' own conditions).
BACKEND_REQUESTS = {
    ("pods", "create"),
    ("pods", "list"),
    ("pods", "watch"),
    ("pods", "delete"),
    ("pods/log", "get"),
}
# What each CoreV1Api method the backend may call asks for; a method missing here fails the scan below.
CLIENT_METHODS = {
    "create_namespaced_pod": ("pods", "create"),
    "list_namespaced_pod": ("pods", "list"),
    "read_namespaced_pod": ("pods", "get"),
    "delete_namespaced_pod": ("pods", "delete"),
    "read_namespaced_pod_log": ("pods/log", "get"),
    "list_namespaced_event": ("events", "list"),
    "read_namespaced_secret": ("secrets", "get"),
}


@functools.cache
def _parsed() -> tuple[dict[str, Any], ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(d for d in yaml.load_all(MANIFEST.read_text(encoding="utf-8"), Loader=loader) if d is not None)


def documents() -> list[dict[str, Any]]:
    """The manifest's documents, a fresh copy each time (a test may change its own)."""
    return copy.deepcopy(list(_parsed()))


def the(kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind]
    return found


def container() -> dict[str, Any]:
    (serve,) = the("Deployment")["spec"]["template"]["spec"]["containers"]
    return serve


def env() -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container()["env"]}


def image_command() -> list[str]:
    """ENTRYPOINT + CMD of the Dockerfile, as the container runtime joins them (exec or shell form)."""
    parts: dict[str, list[str]] = {"ENTRYPOINT": [], "CMD": []}
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() in parts:
            rest = rest.strip()
            parts[word.upper()] = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
    return parts["ENTRYPOINT"] + parts["CMD"]


def dockerfile_instructions(name: str) -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    return [
        line.strip().partition(" ")[2].strip()
        for line in text.splitlines()
        if line.strip().upper().startswith(name + " ")
    ]


# --- the schema ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("kind", [d["kind"] for d in documents()])
def test_every_document_passes_strict_validation(kind: str, version: str) -> None:
    kubernetes_validate.validate(the(kind), version, strict=True)


def test_strict_validation_catches_a_mistyped_field() -> None:
    deployment = the("Deployment")
    deployment["spec"]["strategy"]["tpye"] = "Recreate"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_the_manifest_holds_every_part_in_one_namespace() -> None:
    kinds = [d["kind"] for d in documents()]
    assert sorted(kinds) == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Secret",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
        ]
    )
    namespace = the("Namespace")["metadata"]["name"]
    for d in documents():
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == namespace, d["kind"]


# --- RBAC ------------------------------------------------------------------------------------------------------------


def _calls_in_backend() -> set[tuple[str, str]]:
    """(resource, verb) of every CoreV1Api call in the backend's code, found by reading it."""
    found: set[tuple[str, str]] = set()
    for path in sorted(BACKEND.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = node.func.value
            if not (isinstance(receiver, ast.Attribute) and receiver.attr == "_core"):
                continue
            method = node.func.attr.removesuffix("_without_preload_content").removesuffix("_with_http_info")
            assert method in CLIENT_METHODS, f"{path.name}: the backend calls {method}: add it to CLIENT_METHODS"
            found.add(CLIENT_METHODS[method])
            watched = any(
                k.arg == "watch" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords
            )
            if watched:
                found.add((CLIENT_METHODS[method][0], "watch"))
    return found


def test_the_request_list_is_what_the_backend_code_calls() -> None:
    assert _calls_in_backend() == BACKEND_REQUESTS


def granted(role: dict[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""], rule  # pods and their logs are in the core group
        assert "resourceNames" not in rule  # pod names are made per attempt
        out |= {(resource, verb) for resource in rule["resources"] for verb in rule["verbs"]}
    return out


def test_the_role_grants_every_request_of_the_backend() -> None:
    missing = BACKEND_REQUESTS - granted(the("Role"))
    assert not missing, f"the Role lacks {sorted(missing)}"


def test_the_role_grants_nothing_else() -> None:
    extra = granted(the("Role")) - BACKEND_REQUESTS
    assert not extra, f"the Role grants {sorted(extra)}, which the backend never asks for"


def test_the_binding_gives_the_role_to_the_servers_account_where_its_pods_run() -> None:
    role, binding, account = the("Role"), the("RoleBinding"), the("ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    ]
    pod = the("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    # The Role is namespaced: the backend's pods must be created in its namespace.
    assert env()["FLYTELIKE_KUBERNETES__NAMESPACE"]["value"] == role["metadata"]["namespace"]


# --- the Deployment and the Service -----------------------------------------------------------------------------------


def test_one_controller_at_a_time() -> None:
    spec = the("Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def port_of(name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p["containerPort"] for p in container()["ports"] if p["name"] == name_or_number]
    return int(port)


def bind_port() -> int:
    command = image_command()
    bind = command[command.index("--bind") + 1]
    return int(bind.rpartition(":")[2])


def test_probes_ask_grpc_health_on_the_port_the_server_binds() -> None:
    serve = container()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(serve[probe]) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, probe
        assert serve[probe]["grpc"].get("service", "") == "", probe  # the server as a whole, which needs no token
        assert serve[probe]["grpc"]["port"] == bind_port(), probe


def test_clients_and_task_pods_share_the_one_port_the_server_binds() -> None:
    service = the("Service")
    pod_labels = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert the("Deployment")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # flytelike serve listens on --bind only (the ActionService is served there too): any other port the image
    # exposes, the container declares or the Service offers leads nowhere.
    assert [int(port) for port in " ".join(dockerfile_instructions("EXPOSE")).split()] == [bind_port()]
    assert [p["containerPort"] for p in container()["ports"]] == [bind_port()]
    assert {p["port"]: port_of(p["targetPort"]) for p in service["spec"]["ports"]} == {8470: bind_port()}
    # [controller] bind is not read by flytelike serve: setting it would only mislead.
    assert "FLYTELIKE_CONTROLLER__BIND" not in env()
    assert "FLYTELIKE_CONTROLLER__BIND" not in image_env()


def test_task_pods_are_told_the_services_name_and_the_servers_port() -> None:
    service = the("Service")
    ports = {p["port"]: port_of(p["targetPort"]) for p in service["spec"]["ports"]}
    address = env()["FLYTELIKE_CONTROLLER__ADDRESS"]["value"]
    host, _, port = address.rpartition(":")
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    # The Service's name, not the pod's address: it leads to the next server after a restart.
    assert host in (f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local")
    assert ports[int(port)] == bind_port()


def test_every_variable_is_a_setting_and_the_values_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    known = variable_names(Settings, "FLYTELIKE_")
    for name, entry in env().items():
        assert name in known, f"{name} is not a flytelike setting"
        if "value" in entry:
            monkeypatch.setenv(name, entry["value"])
    settings = load_settings()
    assert settings.serve.token_file == "/etc/flytelike/serve/token"
    assert settings.serve.backends == ("kubernetes",)
    assert settings.store.url.startswith("s3://")  # the task pods must reach it: not this pod's volume
    assert settings.kubernetes.namespace == the("Namespace")["metadata"]["name"]
    assert settings.kubernetes.image == container()["image"]  # tasks naming no image get the server's (flytelike)


def test_the_token_and_the_database_come_from_the_secret() -> None:
    secret = the("Secret")["metadata"]["name"]
    pod = the("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    token_file = Path(env()["FLYTELIKE_SERVE__TOKEN_FILE"]["value"])
    token_volume = volumes[mounts[str(token_file.parent)]]
    assert token_volume["secret"]["secretName"] == secret
    assert token_volume["secret"]["items"] == [{"key": "token", "path": token_file.name}]
    # Applying the file again must not replace a token set on the cluster: the Secret carries none.
    assert "data" not in the("Secret")
    assert "stringData" not in the("Secret")
    database = env()["FLYTELIKE_SERVE__DATABASE"]["valueFrom"]["secretKeyRef"]
    assert database == {"name": secret, "key": "database-url", "optional": True}  # absent: SQLite in the home


def test_the_home_is_the_persistent_volume() -> None:
    pod = the("Deployment")["spec"]["template"]["spec"]
    claim = the("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    (home,) = [v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName")]
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    assert mounts[home] == image_env()["FLYTELIKE_HOME"]


def test_the_server_runs_as_the_images_non_root_user() -> None:
    pod = the("Deployment")["spec"]["template"]["spec"]
    (user,) = dockerfile_instructions("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()  # numeric, so that the kubelet can check runAsNonRoot
    assert int(uid) != 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["securityContext"]["fsGroup"] == int(gid or uid)  # the volume is writable by that user


# --- the image -------------------------------------------------------------------------------------------------------


def image_env() -> dict[str, str]:
    out: dict[str, str] = {}
    for instruction in dockerfile_instructions("ENV"):
        for word in shlex.split(instruction):
            key, _, value = word.partition("=")
            out[key] = value
    return out


def test_the_image_runs_flytelike_serve_on_every_interface() -> None:
    command = image_command()
    assert command[:2] == ["flytelike", "serve"]
    assert command[command.index("--bind") + 1] == "0.0.0.0:8470"
    # The Deployment runs the image's command as it is.
    assert "command" not in container()
    assert "args" not in container()


def test_the_images_variables_are_settings() -> None:
    known = variable_names(Settings, "FLYTELIKE_") | {"FLYTELIKE_HOME"}
    flytelike_vars = {k for k in image_env() if k.startswith("FLYTELIKE_")}
    assert flytelike_vars
    assert flytelike_vars <= known


def test_the_image_installs_extras_that_exist_and_the_server_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (arg,) = [a for a in dockerfile_instructions("ARG") if a.startswith("EXTRAS=")]
    extras = arg.removeprefix("EXTRAS=").split(",")
    assert set(extras) <= set(project["project"]["optional-dependencies"])
    # serve: the records and reflection; kubernetes: the manifest's backend; aws: its s3:// store.
    assert {"serve", "kubernetes", "aws"} <= set(extras)
    (install,) = [r for r in dockerfile_instructions("RUN") if "pip install" in r]
    assert '"/src[${EXTRAS}]"' in install


def test_the_image_copies_what_building_the_package_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {
        project["project"]["readme"],
        "pyproject.toml",
        *project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"],
    }
    copied: set[str] = set()
    for instruction in dockerfile_instructions("COPY"):
        *sources, destination = instruction.split()
        assert destination.startswith("/src")
        copied |= set(sources)
    assert needed <= copied
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore  # everything else stays out of the build context
    for path in needed:
        assert f"!{path}" in ignore or f"!{path}/" in ignore, path


def test_the_docs_show_the_dockerfile_as_it_is() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```dockerfile\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert DOCKERFILE.read_text(encoding="utf-8") in blocks


# --- the image's command with the manifest's settings -----------------------------------------------------------------


@pytest.mark.slow
def test_the_images_command_with_the_manifests_settings_serves_probes_clients_and_tasks_on_one_port(
    tmp_path: Path,
) -> None:
    """What the pod runs, on this machine: the manifest's variables, the paths of its volumes moved under tmp_path
    (the home volume, the Secret's token file), the store a local one, and the bind on a free loopback port."""
    token_file = tmp_path / "secret" / "token"
    token_file.parent.mkdir()
    token_file.write_text("the-token-of-the-secret\n")
    variables = {name: entry["value"] for name, entry in env().items() if "value" in entry}
    variables |= {
        "FLYTELIKE_HOME": str(tmp_path / "home"),
        "FLYTELIKE_SERVE__TOKEN_FILE": str(token_file),
        "FLYTELIKE_STORE__URL": (tmp_path / "store").as_uri(),
    }
    command = image_command()
    command[command.index("--bind") + 1] = "127.0.0.1:0"
    executable = shutil.which(command[0], path=str(Path(sys.executable).parent)) or command[0]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLYTELIKE_")}
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        server = subprocess.Popen([executable, *command[1:]], env={**clean, **variables}, cwd=tmp_path, stderr=stderr)
    try:
        address = ""
        deadline = time.monotonic() + 30
        while not address and time.monotonic() < deadline:
            assert server.poll() is None, f"the server ended before listening:\n{log.read_text()}"
            found = re.search(r"^flytelike serve: listening on (\S+)$", log.read_text(), re.MULTILINE)
            address = found.group(1) if found else ""
            time.sleep(0.05)
        assert address, "the server did not say where it listens"
        with grpc.insecure_channel(address) as channel:
            # The kubelet's grpc probe: the server as a whole, without a token.
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            runs = runs_pb2_grpc.RunServiceStub(channel)
            listed = runs.ListRuns(
                runs_pb2.ListRunsRequest(), metadata=(("authorization", "Bearer the-token-of-the-secret"),), timeout=10
            )
            assert list(listed.runs) == []
            with pytest.raises(grpc.RpcError) as refused:
                runs.ListRuns(runs_pb2.ListRunsRequest(), metadata=(("authorization", "Bearer other"),), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # The task pods' ActionService answers on the same port (UNIMPLEMENTED if it were elsewhere), and takes
            # run tokens only: the server's own is no task's.
            actions = actions_pb2_grpc.ActionServiceStub(channel)
            hello = actions_pb2.HelloRequest(run_id="r-none", action_id="0", attempt=1)
            with pytest.raises(grpc.RpcError) as refused:
                actions.Hello(hello, metadata=(("authorization", "Bearer the-token-of-the-secret"),), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (tmp_path / "home" / "server.sqlite3").is_file()  # the records are on the home volume
        assert not (tmp_path / "home" / "serve.token").exists()  # the Secret's token was used, none was made
        server.send_signal(signal.SIGTERM)  # what the kubelet sends when the pod stops
        assert server.wait(timeout=30) == 0
        assert log.read_text().rstrip().endswith("stopped")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
