"""Generate ``flytelike/_proto/`` from the ``.proto`` files under ``proto/``.

This script is the only writer of ``flytelike/_proto/``. It compiles every proto package under
``proto/flytelike/`` (``core/v1``, ``worker/v1``, ...: each directory ``proto/flytelike/<name>/<version>/`` holding
``.proto`` files) with ``protoc`` (from grpcio-tools) and the Python, grpc and mypy-protobuf generators (messages,
and for files that declare a service, grpc stubs ``*_pb2_grpc.py``, each with its ``.pyi``), rewrites the
generated imports so the modules import each other as ``flytelike._proto.<name>.<version>.*_pb2`` (protoc would
write ``flytelike.<name>.<version>``, a package that does not exist), and writes the result byte for byte the same
on every run.

Usage::

    python proto/generate.py           # (re)write flytelike/_proto/
    python proto/generate.py --check   # exit 1 and list the differences if flytelike/_proto/ is stale
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import importlib.resources
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
OUTPUT_DIR = REPO_ROOT / "flytelike" / "_proto"

# Proto packages live in PROTO_ROOT/flytelike/<name>/<version>/ and land in OUTPUT_DIR/<name>/<version>/.
PROTO_NAMESPACE = "flytelike"

MYPY_PLUGIN = "protoc-gen-mypy"
MYPY_GRPC_PLUGIN = "protoc-gen-mypy_grpc"
MAX_DIFF_LINES = 40

# `from flytelike.core.v1 import x_pb2 as y` (.py and .pyi) and the module name protoc passes to the
# descriptor builder ('flytelike.core.v1.x_pb2'), which becomes the classes' __module__; any package's.
_MODULE_REFERENCE = re.compile(r"\bflytelike\.(?=\w+\.v\w+(?:(?: import \w+_pb2\b)|(?:\.\w+_pb2\b)))")
# The grpc stubs name their own file in the message of their grpcio version check.
_FILE_REFERENCE = re.compile(r"\bflytelike/(?=\w+/v\w+/\w+_pb2_grpc\.py\b)")
# Anything that still names a non-existent package as a module after the rewrite is a bug here.
_LEFTOVER_IMPORT = re.compile(r"^\s*(?:from|import)\s+flytelike\.(?!_proto\b)\w+", re.MULTILINE)
_GENCODE_VERSION = re.compile(r"^# Protobuf Python Version: (\S+)$", re.MULTILINE)
_SERVICE = re.compile(r"^service\s+\w+", re.MULTILINE)
# The grpc stubs of a file (x_pb2_grpc.py and .pyi): the generators write them for every file, services or not.
_GRPC_SUFFIX = "_pb2_grpc"


class GenerationError(Exception):
    """protoc failed, or its output was not what this script expects."""


def proto_packages() -> list[str]:
    """The proto package directories (``flytelike/core/v1``, ...), relative to PROTO_ROOT, in sorted order."""
    packages = sorted({p.parent.relative_to(PROTO_ROOT).as_posix() for p in proto_files_under(PROTO_NAMESPACE)})
    if not packages:
        raise GenerationError(f"no .proto files found under {PROTO_ROOT / PROTO_NAMESPACE}/<name>/<version>/")
    return packages


def proto_files_under(folder: str) -> list[Path]:
    return sorted((PROTO_ROOT / folder).glob("*/*/*.proto"))


def proto_files() -> list[str]:
    """Return the .proto files to compile, relative to PROTO_ROOT, in sorted order."""
    return [p.relative_to(PROTO_ROOT).as_posix() for p in proto_files_under(PROTO_NAMESPACE)]


def with_services() -> set[str]:
    """The .proto files (relative to PROTO_ROOT, without suffix) that declare a service and so get grpc stubs."""
    return {
        p.relative_to(PROTO_ROOT).with_suffix("").as_posix()
        for p in proto_files_under(PROTO_NAMESPACE)
        if _SERVICE.search(p.read_text(encoding="utf-8"))
    }


def output_package(package: str) -> str:
    """Where a proto package's modules land, relative to OUTPUT_DIR: ``flytelike/core/v1`` -> ``core/v1``."""
    return package.removeprefix(f"{PROTO_NAMESPACE}/")


def find_plugin(name: str) -> Path:
    """Locate one of mypy-protobuf's protoc plugins: next to this interpreter first, then on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return beside_python
    found = shutil.which(name)
    if found is None:
        raise GenerationError(f"{name} not found; install mypy-protobuf into this environment")
    return Path(found)


def well_known_types_include() -> Path:
    """The directory holding google/protobuf/*.proto, as shipped inside grpcio-tools."""
    include = Path(str(importlib.resources.files("grpc_tools") / "_proto"))
    if not (include / "google" / "protobuf" / "duration.proto").is_file():
        raise GenerationError(f"grpcio-tools well-known type protos not found under {include}")
    return include


def run_protoc(out_dir: Path) -> None:
    """Compile every .proto file into out_dir: messages, grpc stubs, and the mypy stubs of both."""
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known_types_include()}",
        f"--plugin={MYPY_PLUGIN}={find_plugin(MYPY_PLUGIN)}",
        f"--plugin={MYPY_GRPC_PLUGIN}={find_plugin(MYPY_GRPC_PLUGIN)}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *proto_files(),
    ]
    result = subprocess.run(command, cwd=PROTO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GenerationError(f"protoc failed (exit {result.returncode}):\n{result.stderr.strip()}")


def rewrite_imports(text: str, name: str) -> str:
    """Point references to generated modules at flytelike._proto.<name>.<version> instead of flytelike.<name>..."""
    rewritten = _FILE_REFERENCE.sub("flytelike/_proto/", _MODULE_REFERENCE.sub("flytelike._proto.", text))
    leftover = _LEFTOVER_IMPORT.search(rewritten)
    if leftover is not None:
        raise GenerationError(f"{name}: unexpected import left after rewriting: {leftover.group(0).strip()!r}")
    return rewritten


def tool_versions() -> dict[str, str]:
    """Versions of the generators, recorded in the package docstring so a version change shows in --check."""
    return {name: importlib.metadata.version(name) for name in ("grpcio-tools", "mypy-protobuf")}


def package_init(gencode_version: str, packages: list[str]) -> str:
    versions = tool_versions()
    names = ", ".join(p.replace("/", ".") for p in packages)
    sources = ", ".join(f"proto/{p}/*.proto" for p in packages)
    return (
        f'"""Protobuf modules for the flytelike wire format (proto packages {names}).\n'
        "\n"
        f"GENERATED by proto/generate.py from {sources}.\n"
        "Do not edit this folder by hand: change the .proto files and run `python proto/generate.py`;\n"
        "`python proto/generate.py --check` fails when this folder is out of date.\n"
        "\n"
        f"Generated with grpcio-tools {versions['grpcio-tools']}"
        f" and mypy-protobuf {versions['mypy-protobuf']}.\n"
        f"The modules need the protobuf runtime >= {gencode_version}.\n"
        '"""\n'
    )


SUBPACKAGE_INIT = '"""GENERATED by proto/generate.py. Do not edit by hand."""\n'


def render() -> dict[str, bytes]:
    """Generate the full content of OUTPUT_DIR: relative POSIX path -> file bytes."""
    files: dict[str, bytes] = {}
    gencode_versions: set[str] = set()
    packages = proto_packages()
    services = with_services()
    with tempfile.TemporaryDirectory(prefix="flytelike-proto-") as tmp:
        out_dir = Path(tmp)
        run_protoc(out_dir)
        generated_dirs = {out_dir / package for package in packages}
        for package in packages:
            target = output_package(package)
            for path in sorted((out_dir / package).iterdir()):
                if path.suffix not in (".py", ".pyi"):
                    raise GenerationError(f"unexpected protoc output: {package}/{path.name}")
                if (
                    path.stem.endswith(_GRPC_SUFFIX)
                    and f"{package}/{path.stem.removesuffix(_GRPC_SUFFIX)}" not in services
                ):
                    continue  # a file without services: its grpc stubs would only import grpc
                text = path.read_text(encoding="utf-8")
                if path.suffix == ".py" and not path.stem.endswith(_GRPC_SUFFIX):
                    match = _GENCODE_VERSION.search(text)
                    if match is None:
                        raise GenerationError(f"{path.name}: no 'Protobuf Python Version' header")
                    gencode_versions.add(match.group(1))
                files[f"{target}/{path.name}"] = rewrite_imports(text, path.name).encode("utf-8")
            files[f"{target}/__init__.py"] = SUBPACKAGE_INIT.encode("utf-8")
            files[f"{target.split('/')[0]}/__init__.py"] = SUBPACKAGE_INIT.encode("utf-8")
        unexpected = sorted(
            p.relative_to(out_dir).as_posix()
            for p in out_dir.rglob("*")
            if p.is_file() and p.parent not in generated_dirs
        )
        if unexpected:
            raise GenerationError(f"unexpected protoc output outside {', '.join(packages)}: {unexpected}")
    if len(gencode_versions) != 1:
        raise GenerationError(f"expected one gencode version, got {sorted(gencode_versions)}")
    files["__init__.py"] = package_init(gencode_versions.pop(), packages).encode("utf-8")
    return dict(sorted(files.items()))


def existing_files() -> dict[str, bytes]:
    """The current content of OUTPUT_DIR, ignoring Python's bytecode caches."""
    if not OUTPUT_DIR.is_dir():
        return {}
    return {
        path.relative_to(OUTPUT_DIR).as_posix(): path.read_bytes()
        for path in sorted(OUTPUT_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def describe_differences(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """Human-readable lines naming every missing, extra and changed file, with a short diff of each change."""
    lines: list[str] = []
    for name in sorted(expected.keys() - actual.keys()):
        lines.append(f"missing: flytelike/_proto/{name}")
    for name in sorted(actual.keys() - expected.keys()):
        lines.append(f"extra:   flytelike/_proto/{name}")
    for name in sorted(expected.keys() & actual.keys()):
        if expected[name] == actual[name]:
            continue
        lines.append(f"changed: flytelike/_proto/{name}")
        diff = list(
            difflib.unified_diff(
                actual[name].decode("utf-8", errors="replace").splitlines(),
                expected[name].decode("utf-8", errors="replace").splitlines(),
                fromfile=f"flytelike/_proto/{name} (on disk)",
                tofile=f"flytelike/_proto/{name} (generated)",
                lineterm="",
            )
        )
        shown = diff[:MAX_DIFF_LINES]
        lines.extend(f"    {line[:200]}" for line in shown)
        if len(diff) > len(shown):
            lines.append(f"    ... {len(diff) - len(shown)} more diff lines")
    return lines


def write(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """Make OUTPUT_DIR hold exactly `expected`; return one line per file created, updated or removed."""
    changes: list[str] = []
    for name in sorted(actual.keys() - expected.keys()):
        (OUTPUT_DIR / name).unlink()
        changes.append(f"removed: flytelike/_proto/{name}")
    for name, content in expected.items():
        if actual.get(name) != content:
            target = OUTPUT_DIR / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            changes.append(f"{'updated' if name in actual else 'created'}: flytelike/_proto/{name}")
    # Remove directories left empty by removed files (bytecode caches do not count as content).
    for directory in sorted((p for p in OUTPUT_DIR.rglob("*") if p.is_dir()), reverse=True):
        if directory.name != "__pycache__" and all(p.name == "__pycache__" for p in directory.iterdir()):
            shutil.rmtree(directory)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate flytelike/_proto/ from proto/*.proto.")
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 and list the differences if flytelike/_proto/ is not up to date",
    )
    args = parser.parse_args(argv)
    try:
        expected = render()
    except GenerationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    actual = existing_files()
    if args.check:
        differences = describe_differences(expected, actual)
        if differences:
            print("flytelike/_proto/ is out of date with proto/; run `python proto/generate.py`.", file=sys.stderr)
            print("\n".join(differences), file=sys.stderr)
            return 1
        print(f"flytelike/_proto/ is up to date ({len(expected)} files).")
        return 0
    changes = write(expected, actual)
    print("\n".join(changes) if changes else f"flytelike/_proto/ already up to date ({len(expected)} files).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
