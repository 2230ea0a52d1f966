"""``flytelike serve``: the control plane, until SIGTERM or Ctrl-C (both stop it cleanly)."""

from __future__ import annotations

import logging
import signal
import sys

import anyio
import click

from flytelike._config import load_settings
from flytelike._remote._address import split_address
from flytelike._remote._control import ControlPlane
from flytelike.errors import FlytelikeError, SpecError

__all__ = ["serve"]


def _bind(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            split_address(value, field="--bind")
        except SpecError as e:
            raise click.BadParameter(str(e)) from None
    return value


async def _serve(bind: str | None) -> None:
    settings = load_settings()
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with ControlPlane(settings, bind=bind) as plane:
            click.echo(f"flytelike serve: listening on {plane.address}", err=True)
            async for signum in signals:
                logging.getLogger("flytelike.serve").info("stopping (%s)", signal.Signals(signum).name)
                break


@click.command(short_help="Run the control plane: RunService and BlobService.")
@click.option(
    "--bind", metavar="HOST:PORT", callback=_bind, help="Where to listen. Config: [serve] bind (127.0.0.1:8470)."
)
def serve(bind: str | None) -> None:
    """Serve runs to `flytelike run --remote`, `runs --remote`, `logs --remote`, `abort` and fl.Remote.

    \b
    flytelike serve                           # 127.0.0.1:8470, token in $FLYTELIKE_HOME/serve.token
    FLYTELIKE_SERVE__TOKEN=... flytelike serve --bind 0.0.0.0:8470
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        anyio.run(_serve, bind)
    except FlytelikeError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
