"""``flytelike show FILE TASK --as kubernetes``: the pod a task would run as, built as a run would build it.

Nothing is uploaded or created: the bundle digest is computed from the files, the store URLs are those of the
configured ``[store]``, and the run, action and attempt are placeholders (``example``, ``0``, ``1``). The result is
a complete pod manifest (``kubectl apply --dry-run=server -f -`` accepts it).
"""

from __future__ import annotations

import hashlib
from typing import Any

from flytelike._backends._remote import BundleRef, entry_args, module_path
from flytelike._backends.kubernetes import PodInput, pod_manifest, pod_name
from flytelike._bundle import build_bundle
from flytelike._config import Settings
from flytelike._platforms import Kubernetes
from flytelike._serde._template import task_template
from flytelike._storage import attempt_prefix, bundle_key, data_key, inputs_key, open_store
from flytelike._task import Task

__all__ = ["kubernetes_manifest"]

RUN, ACTION, ATTEMPT = "example", "0", 1


def kubernetes_manifest(task: Task[..., Any], file: str, settings: Settings) -> dict[str, Any]:
    """The pod manifest of ``task`` from ``file`` (see the module's docstring)."""
    template = task_template(task, task.resolved(Kubernetes()))
    bundle = build_bundle(file, hash_cache=settings.home / "cache" / "bundles")
    store = open_store(settings.store.url, endpoint_url=settings.store.endpoint_url)
    hex_ = bundle.digest.removeprefix("sha256:")
    ref = BundleRef(store.url(bundle_key(hex_)), hex_, module_path(bundle.root, file))
    data = template.SerializeToString(deterministic=True)
    args = entry_args(
        run=RUN,
        action=ACTION,
        attempt=ATTEMPT,
        bundle=ref,
        inputs=store.url(inputs_key(RUN, ACTION)),
        output_prefix=store.url(attempt_prefix(RUN, ACTION, ATTEMPT).prefix),
        task=template.id.name,
        template=store.url(data_key(hashlib.sha256(data).hexdigest())),
        platform="kubernetes",
    )
    env = {kv.key: kv.value for kv in template.container.env}
    env["FLYTELIKE_STORE__URL"] = settings.store.url
    if settings.store.endpoint_url:
        env["FLYTELIKE_STORE__ENDPOINT_URL"] = settings.store.endpoint_url
    return pod_manifest(
        PodInput(
            template=template,
            name=pod_name(RUN, ACTION, ATTEMPT),
            run=RUN,
            action=ACTION,
            attempt=ATTEMPT,
            executor="show",
            command=[*settings.kubernetes.entrypoint, *args],
            env=env,
            settings=settings.kubernetes,
        )
    )
