"""Retries with backoff, a timeout, and memory that grows after an out-of-memory kill.

flytelike run examples/retries.py main
"""

import asyncio
import os

import flytelike as fl

env = fl.TaskEnvironment(name="retries")

_attempts: dict[str, int] = {}


@env.task(retries=fl.RetryPolicy(3, backoff="50ms"))
async def flaky(key: str, failures: int = 2) -> int:
    """Fails `failures` times, then succeeds; returns the attempt that succeeded."""
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] <= failures:
        raise ConnectionError(f"transient failure {_attempts[key]} of {failures}")
    return _attempts[key]


@env.task(timeout="200ms", retries=1)
async def slow(seconds: float = 10.0) -> str:
    await asyncio.sleep(seconds)
    return "finished"


# In its own process, the memory limit is enforced: the first attempt (150Mi) is killed as out-of-memory, the
# retry gets 2x the memory (300Mi) and succeeds.
@env.task(
    resources=fl.Resources(memory="150Mi"),
    platform=fl.Local(process=True),
    retries=fl.RetryPolicy(2, oom_memory_multiplier=2, oom_memory_limit="600Mi"),
)
def hungry(mib: int = 200) -> int:
    """Touches `mib` MiB of memory, returns the pid that ran it."""
    block = bytearray(mib * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return os.getpid()


@env.task
async def main() -> dict[str, str]:
    attempt = await flaky(key="main")
    try:
        await slow()
        timed_out = "no"
    except fl.errors.TaskTimeoutError as e:
        timed_out = f"yes: {e}"
    pid = await hungry.aio()
    return {"flaky succeeded on attempt": str(attempt), "slow timed out": timed_out, "hungry ran in pid": str(pid)}


if __name__ == "__main__":
    print(fl.run(main).outputs)
