"""``flytelike emulator batch``: an AWS Batch emulator (moto, jobs run as local processes) until Ctrl-C/SIGTERM."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from types import FrameType

import click

from flytelike._backends.batch._emulated import BatchEmulatorInfo, register, unregister
from flytelike._config import load_settings
from flytelike.testing import BatchEmulator

__all__ = ["batch"]


@click.command("batch")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port (0: any free one).")
@click.option(
    "--fail-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Fraction of all requests answered with an HTTP 500 server error.",
)
@click.option(
    "--throttle-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Fraction of all requests answered with throttling (Batch: 429 TooManyRequestsException).",
)
@click.option(
    "--max-vcpus",
    type=click.IntRange(0),
    default=256,
    show_default=True,
    help="maxvCpus of each compute environment; jobs that do not fit wait in RUNNABLE.",
)
def batch(port: int, fail_rate: float, throttle_rate: float, max_vcpus: int) -> None:
    """Serve an AWS Batch EMULATOR (with S3 and CloudWatch Logs) on 127.0.0.1 until Ctrl-C.

    It is not AWS: moto answers the API and every job runs its command as a process on this machine, with its
    memory limit, timeout and logs. Run the printed export lines in the shell that runs flytelike.
    """
    stopped = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with BatchEmulator(port=port, max_vcpus=max_vcpus, fargate_max_vcpus=max_vcpus) as emulator:
            if fail_rate:
                emulator.faults.fail(rate=fail_rate)
            if throttle_rate:
                emulator.faults.throttle(rate=throttle_rate)
            _describe(emulator, fail_rate, throttle_rate)
            # `flytelike run --with batch` finds this emulator by itself while it runs (when nothing else is set).
            registration = register(
                load_settings().home,
                BatchEmulatorInfo(
                    endpoint_url=emulator.endpoint_url,
                    region=emulator.region,
                    queue=emulator.queue,
                    access_key_id=emulator.access_key_id,
                    secret_access_key=emulator.secret_access_key,
                    entrypoint=(sys.executable, "-m", "flytelike.entry"),
                ),
            )
            try:
                while not stopped.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            finally:
                unregister(registration)
            click.echo("stopping the emulator: running jobs are killed, its state is dropped", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _describe(emulator: BatchEmulator, fail_rate: float, throttle_rate: float) -> None:
    click.echo("flytelike AWS Batch EMULATOR - not AWS: moto serves the API and jobs run as local processes.", err=True)
    click.echo(
        f"endpoint  {emulator.endpoint_url}  (Batch, S3 and CloudWatch Logs; region {emulator.region})", err=True
    )
    click.echo(
        f"queues    {emulator.queue} (EC2: {emulator.compute_environment}), "
        f"{emulator.fargate_queue} (Fargate: {emulator.fargate_compute_environment})",
        err=True,
    )
    click.echo(f"bucket    {emulator.bucket}", err=True)
    if fail_rate or throttle_rate:
        click.echo(f"faults    {fail_rate:.0%} of requests fail (500), {throttle_rate:.0%} are throttled", err=True)
    click.echo("`flytelike run --with batch ...` in another terminal uses it; or, in any shell:", err=True)
    for name, value in emulator.environment().items():
        click.echo(f"export {name}={shlex.quote(value)}")
    click.echo("Ctrl-C to stop.", err=True)
