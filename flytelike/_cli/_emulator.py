"""``flytelike emulator ...``: run a cloud backend's emulator on this machine until Ctrl-C.

``flytelike emulator kubernetes`` starts the Kubernetes emulator (API server, scheduler, kubelet on a loopback port)
and prints the kubeconfig to use. The emulators need the ``emulators`` extra; they are imported only when a
subcommand runs, so ``flytelike --help`` does not load aiohttp.
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio
import click

from flytelike._backends.kubernetes._emulated import register, unregister
from flytelike._config import load_settings
from flytelike.errors import FlytelikeError

if TYPE_CHECKING:
    from flytelike.testing.kubernetes import KubernetesEmulator, NodeSpec

__all__ = ["emulator"]

# name -> (module, attribute, one-line help); a subcommand's module is imported when it is invoked.
SUBCOMMANDS: Final[dict[str, tuple[str, str, str]]] = {
    "kubernetes": ("flytelike._cli._emulator", "kubernetes", "A Kubernetes API server, scheduler and kubelet here."),
    "batch": ("flytelike._cli._emulator_batch", "batch", "AWS Batch, S3 and CloudWatch Logs (moto) running jobs here."),
}
EXIT_USAGE: Final = 2


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        command = getattr(importlib.import_module(entry[0]), entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in SUBCOMMANDS.items()])


@click.group(cls=_LazyGroup)
def emulator() -> None:
    """Run a cloud backend's emulator on this machine (for trying backends without a cluster or an account)."""


def _describe(node: NodeSpec) -> str:
    amounts = ", ".join(f"{k} {v}" for k, v in node.capacity.items())
    extras = [f"{k}={v}" for k, v in node.labels.items()] + [f"taint {t['key']}:{t['effect']}" for t in node.taints]
    return f"{node.name} ({amounts}{'; ' + ', '.join(extras) if extras else ''})"


async def _serve(emulator: KubernetesEmulator, nodes: tuple[NodeSpec, ...], home: Path) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with emulator as k8s:
            path = k8s.kubeconfig_path
            # Pods run the entrypoint with this interpreter, which has flytelike (a cluster's image would).
            entrypoint = (sys.executable, "-m", "flytelike.entry")
            registration = await anyio.to_thread.run_sync(register, home, path, entrypoint)
            try:
                await _announce(k8s.url, path, nodes, registration, signals)
            finally:
                await anyio.to_thread.run_sync(unregister, registration)


async def _announce(
    url: str, path: Path, nodes: tuple[NodeSpec, ...], registration: Path, signals: AsyncIterator[int]
) -> None:
    lines = [
        "flytelike Kubernetes emulator: NOT a real cluster. Pods' commands run as local processes;",
        "images are neither pulled nor run, and there is no pod networking.",
        f"API server:  {url}",
        "nodes:       " + "\n             ".join(_describe(n) for n in nodes),
        f"kubeconfig:  {path}",
        "",
        "To use it:",
        f"  export KUBECONFIG={path}",
        f"  export FLYTELIKE_KUBERNETES__KUBECONFIG={path}",
        "",
        f"flytelike run --with kubernetes finds it while it runs, with nothing set (registered in {registration}).",
        "",
        "Running until Ctrl-C (or SIGTERM).",
    ]
    click.echo("\n".join(lines))
    sys.stdout.flush()
    async for signum in signals:
        click.echo(f"{signal.Signals(signum).name}: stopping the emulator (its pods are killed).")
        break


@click.command(short_help="A Kubernetes API server, scheduler and kubelet here.")
@click.option(
    "--nodes",
    "nodes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML or JSON list of nodes (name, capacity, allocatable, labels, taints). "
    "Default: node-1 (8 cpu, 32Gi) and gpu-1 (8 cpu, 32Gi, 1 nvidia.com/gpu, NVIDIA-A10G).",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of API requests answered with 500 or 429.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="API server port (default: a free one).")
@click.option("--token", default=None, help="Require this bearer token on every request.")
@click.option("--missing-image", "missing_images", multiple=True, help="An image whose pull fails (repeatable).")
def kubernetes(
    nodes_file: Path | None, fail_rate: float, port: int, token: str | None, missing_images: tuple[str, ...]
) -> None:
    """Run the Kubernetes emulator on a loopback port and print the kubeconfig to use.

    \b
    flytelike emulator kubernetes
    flytelike emulator kubernetes --nodes nodes.yaml --fail-rate 0.05 --port 8001
    """
    # Imported here: aiohttp and the emulator load only when the emulator runs (start-up time of the CLI).
    from flytelike.testing.kubernetes import DEFAULT_NODES, KubernetesEmulator, load_nodes

    try:
        home = load_settings().home
        nodes = load_nodes(nodes_file) if nodes_file is not None else DEFAULT_NODES
        k8s = KubernetesEmulator(
            nodes=nodes, fail_rate=fail_rate, port=port, token=token, missing_images=missing_images
        )
    except (ValueError, OSError, FlytelikeError) as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        anyio.run(_serve, k8s, nodes, home)
    except OSError as error:
        click.echo(f"Error: cannot start the emulator: {error}", err=True)
        sys.exit(1)
