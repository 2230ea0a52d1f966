"""The Batch backend on real AWS: runs only when asked for, and is skipped with the reason otherwise.

    FLYTELIKE_REAL_AWS=1 FLYTELIKE_BATCH__QUEUE=my-queue FLYTELIKE_BATCH__REGION=us-east-1 \\
        FLYTELIKE_STORE__URL=s3://bucket/prefix pytest tests/test_batch_real_aws.py

The queue's jobs must reach the bucket and this machine's controller, and ``[batch] image`` (or the task's image)
must have flytelike installed (see docs/batch.md).
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from flytelike._config import load_settings
from flytelike._loader import load_file
from flytelike._runtime import Runtime

# Read at import, before the autouse fixtures clear the environment.
REAL = os.environ.get("FLYTELIKE_REAL_AWS") == "1"
QUEUE = os.environ.get("FLYTELIKE_BATCH__QUEUE", "")
REGION = os.environ.get("FLYTELIKE_BATCH__REGION", "") or os.environ.get("AWS_DEFAULT_REGION", "")
STORE = os.environ.get("FLYTELIKE_STORE__URL", "")

pytestmark = pytest.mark.skipif(
    not (REAL and QUEUE and REGION and STORE.startswith("s3://")),
    reason="needs a real AWS account: set FLYTELIKE_REAL_AWS=1, FLYTELIKE_BATCH__QUEUE, a region and "
    "FLYTELIKE_STORE__URL=s3://... that the queue's jobs can reach",
)


async def test_a_task_runs_as_a_real_batch_job(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'real-batch'\n")
    path = root / "real_batch_tasks.py"
    path.write_text(
        textwrap.dedent(
            """
            import os

            import flytelike as fl

            env = fl.TaskEnvironment(name="real-batch")


            @env.task
            async def hello() -> str:
                return os.environ.get("AWS_BATCH_JQ_NAME", "")
            """
        )
    )
    module = load_file(path)
    try:
        settings = load_settings(store={"url": STORE}, batch={"queue": QUEUE, "region": REGION})
        async with Runtime(settings=settings, platform="batch") as runtime:
            handle = await runtime.start(module.hello)
            assert await handle.result() != ""
    finally:
        sys.modules.pop(module.__name__, None)
