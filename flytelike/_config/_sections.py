"""The sections of the settings for running tasks elsewhere: the controller, Kubernetes, AWS Batch, the server and
its clients. Frozen dataclasses, resolved by :mod:`flytelike._config` like every section."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from flytelike._config._schema import at_least
from flytelike.errors import SpecError

__all__ = ["BatchSettings", "ControllerSettings", "KubernetesSettings", "RemoteSettings", "ServeSettings"]


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    """How tasks running elsewhere reach the process that runs their run (``[controller]``).

    ``bind``: where the controller listens when a run has a task off this process tree, ``HOST`` or ``HOST:PORT``
    (default ``127.0.0.1``, any free port). ``address``: the ``HOST:PORT`` tasks are told to call back on, when it
    is not the bound one (a pod reaching a laptop through a tunnel, a NAT); empty: the bound address. ``token``:
    set by the controller in a task's environment (``FLYTELIKE_CONTROLLER__TOKEN``), the run's own credential;
    never configured by hand. ``reconnect_timeout``: how long a task keeps calling a controller that went away (a
    restarting ``flytelike serve``) before its calls fail, in seconds. ``startup_wait``: how long a task starting
    keeps trying a controller that does not answer before it fails (0: at once); a controller that restarts sets
    it in its tasks' environment. ``tls_ca``: the certificate (PEM) that the controller's TLS certificate is
    checked against, or a file holding it; set, tasks call back over TLS (``flytelike serve`` with TLS sets it in
    its tasks' environment: its own certificate chain, unless one is configured here).
    """

    bind: str = "127.0.0.1"
    address: str = ""
    token: str = field(default="", repr=False)
    reconnect_timeout: float = field(default=600.0, metadata=at_least(1))
    startup_wait: float = field(default=0.0, metadata=at_least(0))
    tls_ca: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("bind", "address"):
            value = getattr(self, name)
            if not value:
                continue
            _check_host_port(f"ControllerSettings.{name}", value, require_port=name == "address")


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    """Where and how tasks run as pods (``[kubernetes]``).

    ``kubeconfig`` / ``context``: the cluster, as kubectl finds it (default: ``KUBECONFIG`` or ``~/.kube/config``,
    else the in-cluster service account); ``namespace`` of the pods (a task's ``fl.Kubernetes(namespace=)`` wins);
    ``image`` of pods whose task names none (it needs Python and flytelike: see docs/remote.md);
    ``entrypoint``: the command before the entrypoint's arguments; ``service_account``; ``gpu_product_label``,
    ``tpu_accelerator_label``, ``tpu_topology_label``: the node labels that select a GPU type and a TPU slice;
    ``mig_strategy``: ``single`` (MIG profile as a node label) or ``mixed`` (``nvidia.com/mig-<profile>``);
    ``pending_timeout``: seconds a pod may stay unschedulable before the attempt fails (an INFRA failure);
    ``image_pull_grace``: seconds of ImagePullBackOff before a USER failure.
    """

    kubeconfig: str = ""
    context: str = ""
    namespace: str = "default"
    image: str = "python:3.11-slim"
    entrypoint: tuple[str, ...] = ("flytelike-entry",)
    service_account: str = ""
    gpu_product_label: str = "nvidia.com/gpu.product"
    tpu_accelerator_label: str = "cloud.google.com/gke-tpu-accelerator"
    tpu_topology_label: str = "cloud.google.com/gke-tpu-topology"
    mig_strategy: Literal["single", "mixed"] = "mixed"
    pending_timeout: float = field(default=900.0, metadata=at_least(0))
    image_pull_grace: float = field(default=180.0, metadata=at_least(0))


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """The control plane, ``flytelike serve`` (``[serve]``).

    ``bind``: ``HOST:PORT`` it listens on (default ``127.0.0.1:8470``). ``token``: the bearer token every call
    must present (``FLYTELIKE_SERVE__TOKEN``), or ``token_file``: a file holding it; with neither, the server makes
    one in ``$FLYTELIKE_HOME/serve.token``. ``database``: ``postgresql://user:pass@host/db``, or a SQLite file;
    empty: ``$FLYTELIKE_HOME/server.sqlite3``. ``tls_cert`` / ``tls_key``: PEM files; both set, the server speaks
    TLS only. ``backends``: the backends runs may use, each a built-in name (``kubernetes``, ``batch``) or
    ``NAME=module:factory``; the first is the platform of tasks without one unless ``platform`` names another.
    """

    bind: str = "127.0.0.1:8470"
    token: str = field(default="", repr=False)
    token_file: str = ""
    database: str = field(default="", repr=False)
    tls_cert: str = ""
    tls_key: str = ""
    backends: tuple[str, ...] = ("kubernetes",)
    platform: str = ""

    def __post_init__(self) -> None:
        _check_host_port("ServeSettings.bind", self.bind, require_port=True)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SpecError(
                "ServeSettings.tls_key" if self.tls_cert else "ServeSettings.tls_cert",
                "",
                "TLS needs both a certificate and its key",
                accepted="tls_cert and tls_key, both PEM file paths",
            )
        if not self.backends:
            raise SpecError("ServeSettings.backends", [], "names no backend", accepted='["kubernetes"]')


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """The control plane this machine's ``--remote`` commands talk to (``[remote]``).

    ``endpoint``: ``HOST:PORT`` or ``grpc://HOST:PORT`` (plaintext), ``grpcs://HOST:PORT`` (TLS).
    ``token``: the server's bearer token (``FLYTELIKE_REMOTE__TOKEN``), or ``token_file`` holding it.
    ``tls_ca``: a PEM file of the CA that signed the server's certificate (default: the system's roots).
    """

    endpoint: str = ""
    token: str = field(default="", repr=False)
    token_file: str = ""
    tls_ca: str = ""


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How tasks run as AWS Batch jobs (``[batch]``; see ``docs/batch.md``).

    ``queue``: the job queue (name or ARN) of tasks whose ``fl.Batch`` names none. ``job_role`` and
    ``execution_role``: IAM role ARNs (jobRoleArn, executionRoleArn; Fargate needs the latter). ``region`` and
    ``endpoint_url``: where the Batch and CloudWatch Logs clients go (None: as botocore finds them).
    ``runnable_timeout``: seconds a job may stay RUNNABLE before its attempt fails as INFRA (default 30 min).
    ``poll_interval_min`` / ``poll_interval_max``: bounds in seconds of the shared DescribeJobs poll, fast while
    jobs start or end, slow while all wait in RUNNABLE. ``calls_per_second``: the one budget of every Batch and
    Logs call of a backend. ``entrypoint``: the command before ``flytelike-entry``'s arguments. ``image``: the
    image of tasks whose template names none. ``log_group``: the CloudWatch Logs group of the jobs' streams.
    """

    queue: str = ""
    job_role: str = ""
    execution_role: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    runnable_timeout: float = 1800.0
    poll_interval_min: float = 1.0
    poll_interval_max: float = 15.0
    calls_per_second: float = 10.0
    entrypoint: tuple[str, ...] = ("flytelike-entry",)
    image: str = ""
    log_group: str = "/aws/batch/job"

    def __post_init__(self) -> None:
        for name in ("runnable_timeout", "poll_interval_min", "poll_interval_max", "calls_per_second"):
            if not getattr(self, name) > 0:
                raise SpecError(f"BatchSettings.{name}", getattr(self, name), "must be above 0", accepted="e.g. 10")
        if self.poll_interval_max < self.poll_interval_min:
            raise SpecError(
                "BatchSettings.poll_interval_max",
                self.poll_interval_max,
                f"is below poll_interval_min ({self.poll_interval_min})",
                accepted=f">= {self.poll_interval_min}",
            )
        if not self.entrypoint or not all(self.entrypoint):
            raise SpecError(
                "BatchSettings.entrypoint",
                list(self.entrypoint),
                "must name a program (and its first arguments), none of them empty",
                accepted="['flytelike-entry'] or ['python', '-m', 'flytelike.entry']",
            )
        if self.endpoint_url is not None:
            endpoint = urlsplit(self.endpoint_url)
            if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
                raise SpecError(
                    "BatchSettings.endpoint_url",
                    self.endpoint_url,
                    "is not an http:// or https:// URL",
                    accepted="e.g. 'http://127.0.0.1:5000'",
                )


def _check_host_port(setting: str, value: str, *, require_port: bool) -> None:
    accepted = "HOST:PORT, e.g. '127.0.0.1:4170' or '[::1]:4170'" if require_port else "HOST or HOST:PORT"
    host, port = value, ""
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise SpecError(setting, value, "has '[' without ']'", accepted=accepted)
        host, rest = value[1:close], value[close + 1 :]
        if rest and not rest.startswith(":"):
            raise SpecError(setting, value, "has text after ']' that is not ':PORT'", accepted=accepted)
        port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    elif ":" in value:
        raise SpecError(setting, value, "an IPv6 address needs brackets", accepted=accepted)
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise SpecError(setting, value, "has no valid host", accepted=accepted)
    if require_port and not port:
        raise SpecError(setting, value, "has no port", accepted=accepted)
    if port and (not port.isdigit() or not 0 <= int(port) <= 65535):
        raise SpecError(setting, value, f"the port {port!r} is not a number from 0 to 65535", accepted=accepted)
