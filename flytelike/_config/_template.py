"""The commented configuration file ``flytelike config init`` writes: every setting, its meaning and its default.

Every line that sets something is commented out, so the file as written changes nothing; uncommenting a line (and
its table's header) sets that key. Values given to :func:`config_template` (``config init --endpoint``) are the
exception: they are written set, in their table, with the rest of the table still commented out. The settings
come from the schema (:class:`~flytelike._config.Settings`), so a new setting appears here by itself; its
description must be added to ``DESCRIPTIONS`` (a test checks that each one has one).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["DESCRIPTIONS", "EXAMPLES", "config_template"]

DESCRIPTIONS: dict[str, str] = {
    "home": "Where run records (runs.sqlite3) and the output cache (cache.sqlite3) are kept. The config file of\n"
    "the home is always the one FLYTELIKE_HOME (or ~/.flytelike) names; this only moves records and cache.",
    "local": "How runs on this machine treat Resources.",
    "local.resources": "check: fail memory that can never fit and warn for cpu/GPUs; strict: fail those too;\n"
    "ignore: run everything anyway.",
    "local.workers": "Warm worker processes for fl.Local(process=True) tasks (at least 1; more than the machine\n"
    "holds, one per core and 256 MiB each, is lowered to that). Default: one per core.",
    "accelerators": "Devices added to the catalog, or more partitions/aliases for a known one: one table\n"
    "each, with name, device_class, max_quantity, partitions, aliases.",
    "store": "The blob store that carries code, inputs and outputs to tasks running elsewhere.",
    "store.url": 'file:///absolute/path or s3://bucket/prefix; empty ("") means file://$FLYTELIKE_HOME/store.',
    "store.endpoint_url": "An S3-compatible server (MinIO, Ceph, moto) for s3:// URLs. Default: none (AWS).",
    "controller": "How tasks running elsewhere reach the process that runs their run.",
    "controller.bind": "Where the controller listens when a task runs off this process tree: HOST or HOST:PORT\n"
    "(no port: any free one).",
    "controller.address": "The HOST:PORT tasks are told to call back on, when it is not the bound one (a tunnel,\n"
    'a NAT); "" means the bound address.',
    "controller.token": "Set by the controller in a task's environment (the run's own credential); never set by\nhand.",
    "controller.reconnect_timeout": "Seconds a task keeps calling a controller that went away (a restarting flytelike\n"
    "serve) before its calls fail. Default: 600.",
    "controller.tls_ca": "The certificate (PEM text, or a file holding it) the controller's TLS certificate is\n"
    "checked against; set, tasks call back over TLS. flytelike serve with TLS sets it for its tasks.",
    "controller.startup_wait": "Seconds a starting task keeps trying a controller that does not answer (0: fail at\n"
    "once). A controller that restarts (flytelike serve) sets it for its tasks. Default: 0.",
    "kubernetes": "Where and how tasks run as pods.",
    "kubernetes.kubeconfig": 'The kubeconfig file; "" means KUBECONFIG or ~/.kube/config, else the in-cluster\n'
    "service account.",
    "kubernetes.context": 'The kubeconfig context; "" means its current one.',
    "kubernetes.namespace": "Namespace of the pods (a task's fl.Kubernetes(namespace=) wins).",
    "kubernetes.image": "Image of pods whose task names none (it needs Python and flytelike).",
    "kubernetes.entrypoint": "The command before the entrypoint's arguments.",
    "kubernetes.service_account": 'Service account of the pods; "" means the namespace\'s default.',
    "kubernetes.gpu_product_label": "The node label that selects a GPU type.",
    "kubernetes.tpu_accelerator_label": "The node label that selects a TPU type.",
    "kubernetes.tpu_topology_label": "The node label that selects a TPU slice topology.",
    "kubernetes.mig_strategy": "single: a MIG profile as a node label; mixed: nvidia.com/mig-<profile> resources.",
    "kubernetes.pending_timeout": "Seconds a pod may stay unschedulable before the attempt fails (an INFRA failure).",
    "kubernetes.image_pull_grace": "Seconds of ImagePullBackOff before the attempt fails (a USER failure).",
    "batch": "Where and how tasks run as AWS Batch jobs.",
    "batch.queue": "The job queue (name or ARN) of tasks whose fl.Batch names none.",
    "batch.job_role": "IAM role ARN the job's container assumes (jobRoleArn).",
    "batch.execution_role": "IAM role ARN that pulls images and writes logs (executionRoleArn; Fargate needs it).",
    "batch.region": "AWS region of the Batch and CloudWatch Logs clients; unset: as botocore finds it.",
    "batch.endpoint_url": "An endpoint for Batch and CloudWatch Logs (an emulator); unset: AWS's.",
    "batch.runnable_timeout": "Seconds a job may stay RUNNABLE before the attempt fails (an INFRA failure).",
    "batch.poll_interval_min": "Shortest wait between two DescribeJobs polls (while jobs start or finish).",
    "batch.poll_interval_max": "Longest wait between two polls (while every job waits or runs).",
    "batch.calls_per_second": "Most AWS calls a second, all of them together (one token bucket).",
    "batch.entrypoint": "The command before the entrypoint's arguments.",
    "batch.image": 'Image of jobs whose task names none; "" means the task\'s own.',
    "batch.log_group": "The CloudWatch Logs group the jobs write to.",
    "serve": "The control plane (flytelike serve).",
    "serve.bind": "HOST:PORT the server listens on.",
    "serve.token": "The bearer token every call must present (FLYTELIKE_SERVE__TOKEN); with neither this nor\n"
    "token_file, the server makes one in $FLYTELIKE_HOME/serve.token.",
    "serve.token_file": "A file holding the server's token.",
    "serve.database": 'postgresql://user:password@host:5432/db, or a SQLite file; "" means\n'
    "$FLYTELIKE_HOME/server.sqlite3.",
    "serve.tls_cert": "PEM certificate (chain) of the server; with tls_key, the server speaks TLS only.",
    "serve.tls_key": "PEM private key of tls_cert.",
    "serve.backends": "Backends runs may use: built-in names (kubernetes, batch) or NAME=module:factory.",
    "serve.platform": 'Platform of tasks without one; "" means the first of backends.',
    "remote": "The control plane that --remote commands talk to.",
    "remote.endpoint": "HOST:PORT or grpc://HOST:PORT (plaintext), grpcs://HOST:PORT (TLS).",
    "remote.token": "The server's bearer token (FLYTELIKE_REMOTE__TOKEN).",
    "remote.token_file": "A file holding the server's token.",
    "remote.tls_ca": "PEM file of the CA that signed the server's certificate; \"\" means the system's roots.",
}

# Shown for settings whose default cannot be written in TOML (none), as an example of a value.
EXAMPLES: dict[str, Any] = {
    "local.workers": 4,
    "store.endpoint_url": "http://127.0.0.1:9000",
    "batch.region": "us-east-1",
    "batch.endpoint_url": "http://127.0.0.1:5000",
}

_DEFAULT_HOME = "~/.flytelike"
_ACCELERATOR_EXAMPLE = """\
# [[accelerators]]
# name = "RTX6000"
# device_class = "nvidia-gpu"
# max_quantity = 4
# partitions = []
# aliases = ["RTX 6000 Ada"]
"""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    # A JSON string is a valid TOML basic string (the same escapes).
    return json.dumps(str(value))


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines())


def _key(name: str, field: dataclasses.Field[Any], default: Any, given: Mapping[str, Any]) -> str:
    """One key: its description, then the key set to its given value, or else commented out with its default (or an
    example value)."""
    key = field.name
    out = _comment(DESCRIPTIONS.get(name, ""))
    if key in given:
        out += f"{key} = {_toml(given[key])}\n"
    elif default is None:
        out += f"# {key} = {_toml(EXAMPLES[name])}  # an example; not set by default\n"
    else:
        out += f"# {key} = {_toml(default)}\n"
    return out


def config_template(settings_cls: type, values: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The commented TOML file for ``settings_cls`` (:class:`~flytelike._config.Settings`).

    Args:
        settings_cls: the settings schema.
        values: keys to write set rather than commented out, by table: ``{"remote": {"endpoint": "h:8470"}}``.

    Raises:
        ValueError: ``values`` names a table or key the schema does not have.
    """
    values = values or {}
    sections = {
        f.name
        for f in dataclasses.fields(settings_cls)
        if f.init and f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory())
    }
    if unknown_tables := sorted(set(values) - sections):
        raise ValueError(f"the settings have no table [{unknown_tables[0]}]; tables: {', '.join(sorted(sections))}")
    set_keys = "; ".join(f"[{table}] {', '.join(keys)}" for table, keys in values.items() if keys)
    first = (
        f"# flytelike configuration. Set here: {set_keys}. Every other line that sets something is\n"
        "# commented out and shows the default:\n"
        if set_keys
        else "# flytelike configuration. Every line that sets something is commented out and shows the default:\n"
    )
    head = first + (
        "# uncomment a key (and the [table] line above it) to change it. Later sources win over this file:\n"
        "# ./flytelike.toml, then FLYTELIKE_* environment variables (FLYTELIKE_LOCAL__RESOURCES=strict), then\n"
        "# command-line flags. `flytelike config show` prints each setting's value and where it came from.\n"
    )
    scalars: list[str] = []
    tables: list[str] = []
    for f in dataclasses.fields(settings_cls):
        if not f.init:
            continue
        if f.name == "accelerators":
            tables.append(_comment(DESCRIPTIONS[f.name]) + _ACCELERATOR_EXAMPLE)
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            given = values.get(f.name, {})
            keys = [sub.name for sub in dataclasses.fields(default)]
            if unknown := sorted(set(given) - set(keys)):
                raise ValueError(f"[{f.name}] has no key {unknown[0]!r}; its keys: {', '.join(keys)}")
            # The header is set only with a key under it: an empty table would still change nothing, but reads
            # as if it did.
            header = f"[{f.name}]\n" if given else f"# [{f.name}]\n"
            lines = _comment(DESCRIPTIONS.get(f.name, "")) + header
            for sub in dataclasses.fields(default):
                lines += _key(f"{f.name}.{sub.name}", sub, getattr(default, sub.name), given)
            tables.append(lines)
        elif f.name == "home":
            scalars.append(_comment(DESCRIPTIONS["home"]) + f"# home = {_toml(_DEFAULT_HOME)}\n")
        else:
            scalars.append(_key(f.name, f, default, {}))
    return head + "\n" + "\n".join(scalars + tables)
