"""The public API: ``flytelike.__all__`` is pinned, and ``import flytelike`` stays light."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import flytelike

PUBLIC_API = [
    "GPU",
    "TPU",
    "Amount",
    "Batch",
    "Cache",
    "Device",
    "DeviceClass",
    "DeviceSpec",
    "Dir",
    "File",
    "Kubernetes",
    "Local",
    "Platform",
    "Quantity",
    "Remote",
    "Resources",
    "RetryPolicy",
    "ReusePolicy",
    "RunHandle",
    "Runner",
    "Secret",
    "SpecError",
    "Task",
    "TaskContext",
    "TaskEnvironment",
    "Timeout",
    "Toleration",
    "__version__",
    "catalog",
    "ctx",
    "errors",
    "group",
    "map",
    "parse_platform_spec",
    "register_device",
    "run",
    "run_async",
]

# Heavy or optional dependencies that the SDK objects must not pull in (the layering rules, and the import-time budget).
HEAVY_MODULES = [
    "google.protobuf",
    "grpc",
    "anyio",
    "pydantic",
    "pydantic_settings",
    "kubernetes",
    "aioboto3",
    "boto3",
    "click",
]


def test_all_is_pinned() -> None:
    # Changing the public API is a deliberate act: update this list in the same change.
    assert sorted(flytelike.__all__) == sorted(PUBLIC_API)
    assert len(set(flytelike.__all__)) == len(flytelike.__all__)


def test_every_exported_name_resolves() -> None:
    for name in flytelike.__all__:
        assert getattr(flytelike, name) is not None, name


def test_star_import_and_dir_show_the_public_api() -> None:
    namespace: dict[str, object] = {}
    exec("from flytelike import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(PUBLIC_API)
    assert set(PUBLIC_API) <= set(dir(flytelike))


def test_public_classes_live_in_flytelike() -> None:
    for name in flytelike.__all__:
        value = getattr(flytelike, name)
        if isinstance(value, type):
            assert value.__module__.startswith("flytelike"), name
        elif isinstance(value, types.ModuleType):
            assert value.__name__ == "flytelike.errors"


def test_spec_error_is_a_value_error() -> None:
    assert issubclass(flytelike.SpecError, ValueError)
    assert flytelike.SpecError is flytelike.errors.SpecError
    assert issubclass(flytelike.errors.ConfigError, flytelike.SpecError)
    assert issubclass(flytelike.errors.ValueConversionError, TypeError)
    assert issubclass(flytelike.SpecError, flytelike.errors.FlytelikeError)


def test_version() -> None:
    assert isinstance(flytelike.__version__, str)
    assert flytelike.__version__.count(".") >= 2


def test_import_does_not_load_heavy_dependencies() -> None:
    code = (
        "import json, sys\n"
        "import flytelike\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_defining_tasks_does_not_load_heavy_dependencies() -> None:
    code = (
        "import json, sys\n"
        "import flytelike as fl\n"
        "env = fl.TaskEnvironment(name='e', resources=fl.Resources(cpu=2, memory='4Gi', gpu='A100:1'),\n"
        "                         platform=fl.Batch(queue='q'), cache=fl.Cache(ttl='1h'))\n"
        "@env.task(retries=3, timeout='2h')\n"
        "async def f(x: int, y: list[str] | None = None) -> float: ...\n"
        "f.resolved(with_platform=fl.parse_platform_spec('batch:cpu=8'))\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_every_lazy_name_is_public_and_every_public_name_is_reachable() -> None:
    lazy = set(flytelike._LAZY)  # type: ignore[attr-defined]
    eager = {"errors", "SpecError", "__version__"}
    assert lazy | eager == set(PUBLIC_API)
    assert not lazy & eager


def test_import_loads_the_sdk_model_only_when_used() -> None:
    # `flytelike --help`, `flytelike runs` and anything importing flytelike.errors import the package; they must
    # not pay for the SDK model (tens of milliseconds) they do not use.
    code = (
        "import json, sys\n"
        "import flytelike\n"
        "before = sorted(m for m in sys.modules if m.startswith('flytelike'))\n"
        "flytelike.Resources\n"
        "after = sorted(m for m in sys.modules if m.startswith('flytelike'))\n"
        "print(json.dumps([before, 'flytelike._resources' in after]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, loaded = json.loads(out.stdout)
    assert before == ["flytelike", "flytelike._version", "flytelike.errors"]
    assert loaded
