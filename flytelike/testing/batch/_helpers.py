"""Helpers for tests that drive the emulator through a Batch client, as a backend would."""

from __future__ import annotations

from typing import Any

import anyio

__all__ = ["wait_for_job"]


async def wait_for_job(
    batch: Any, job_id: str, *statuses: str, timeout: float = 10.0, interval: float = 0.02
) -> dict[str, Any]:
    """Poll DescribeJobs until the job is in one of ``statuses`` (default: SUCCEEDED or FAILED); returns its entry.

    Args:
        batch: an aioboto3 (aiobotocore) Batch client.
        job_id: the job's id.
        statuses: the statuses to wait for.
        timeout: seconds before giving up with TimeoutError, which names the status last seen.
        interval: seconds between two DescribeJobs calls.
    """
    wanted = statuses or ("SUCCEEDED", "FAILED")
    last: dict[str, Any] = {}
    with anyio.move_on_after(timeout):
        while True:
            found = (await batch.describe_jobs(jobs=[job_id]))["jobs"]
            if found:
                last = found[0]
                if last["status"] in wanted:
                    return last
            await anyio.sleep(interval)
    raise TimeoutError(
        f"job {job_id} did not reach {' or '.join(wanted)} in {timeout} s; last seen: {last.get('status')}"
    )
