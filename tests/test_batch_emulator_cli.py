"""``flytelike emulator batch`` serves the emulator, prints how to reach it, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest
from click.testing import CliRunner

from flytelike._cli._emulator_batch import batch

ROOT = Path(__file__).resolve().parents[1]


def test_a_bad_rate_is_refused_naming_the_option() -> None:
    result = CliRunner().invoke(batch, ["--fail-rate", "2"])
    assert result.exit_code == 2
    assert "--fail-rate" in result.output
    assert "0<=x<=1" in result.output.replace(" ", "")


@pytest.mark.slow  # a process importing moto and serving
def test_it_prints_the_exports_applies_the_fault_rate_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from flytelike._cli._emulator_batch import batch; batch(sys.argv[1:])"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--throttle-rate", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        exports: dict[str, str] = {}
        while "FLYTELIKE_STORE__ENDPOINT_URL" not in exports:
            line = process.stdout.readline()
            assert line, f"the command ended early: {process.stderr.read() if process.stderr else ''}"
            name, _, value = line.strip().removeprefix("export ").partition("=")
            exports[name] = value
        client = boto3.client(
            "batch",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name=exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(botocore.exceptions.ClientError, match="TooManyRequestsException"):
            client.describe_job_queues()
        client.close()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "EMULATOR - not AWS" in err
    assert f"endpoint  {exports['AWS_ENDPOINT_URL']}" in err
    assert exports["FLYTELIKE_BATCH__QUEUE"] == "flytelike"
