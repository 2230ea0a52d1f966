"""The Kubernetes state table (design.md §4.5), row by row, from pod statuses shaped as the API server returns them."""

from __future__ import annotations

from typing import Any

import pytest

from flytelike._backends.kubernetes._states import observe


def _pod(phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "fl-r-0-1"},
        "spec": {"nodeName": status.pop("node", None)},
        "status": {"phase": phase, **status},
    }


def _container(name: str = "task", **state: Any) -> dict[str, Any]:
    return {"name": name, "image": "python:3.11", "ready": False, "restartCount": 0, "state": state}


ROWS: list[tuple[str, dict[str, Any], tuple[str, str | None]]] = [
    ("pending, not scheduled yet", _pod("Pending"), ("queued", None)),
    (
        "unschedulable: the scheduler's message",
        _pod(
            "Pending",
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are "
                    "available: 2 No preemption victims found for incoming pod.",
                }
            ],
        ),
        ("waiting", None),
    ),
    (
        "scheduled, container creating",
        _pod(
            "Pending",
            node="node-1",
            conditions=[{"type": "PodScheduled", "status": "True"}],
            containerStatuses=[_container(waiting={"reason": "ContainerCreating"})],
        ),
        ("initializing", None),
    ),
    (
        "running",
        _pod("Running", containerStatuses=[_container(running={"startedAt": "2026-12-01T10:00:00Z"})]),
        ("running", None),
    ),
    (
        "succeeded",
        _pod("Succeeded", containerStatuses=[_container(terminated={"exitCode": 0, "reason": "Completed"})]),
        ("ended", None),
    ),
    (
        "failed with exit 10",
        _pod("Failed", containerStatuses=[_container(terminated={"exitCode": 10, "reason": "Error"})]),
        ("ended", None),
    ),
    (
        "OOMKilled with exit code 0 is still out of memory",
        _pod("Failed", containerStatuses=[_container(terminated={"exitCode": 0, "reason": "OOMKilled"})]),
        ("failed", "oom"),
    ),
    (
        "OOMKilled in a running pod's last state",
        _pod(
            "Running",
            containerStatuses=[
                {**_container(running={}), "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
            ],
        ),
        ("failed", "oom"),
    ),
    (
        "DisruptionTarget (preempted by the scheduler)",
        _pod(
            "Running",
            conditions=[
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": "Preempted in order to admit critical pod",
                }
            ],
        ),
        ("failed", "system"),
    ),
    (
        "evicted",
        _pod("Failed", reason="Evicted", message="The node was low on resource: memory."),
        ("failed", "system"),
    ),
    (
        "node shutdown",
        _pod("Failed", reason="Shutdown", message="Pod was terminated in response to imminent node shutdown."),
        ("failed", "system"),
    ),
    (
        "deadline exceeded",
        _pod(
            "Failed", reason="DeadlineExceeded", message="Pod was active on the node longer than the specified deadline"
        ),
        ("failed", "timeout"),
    ),
    (
        "failed with an empty reason and no container status",
        _pod("Failed", reason="", message=""),
        ("failed", "system"),
    ),
    (
        "init container ImagePullBackOff: waiting, then a user failure after the grace",
        _pod(
            "Pending",
            node="node-1",
            initContainerStatuses=[
                _container("init", waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope:1"'})
            ],
        ),
        ("waiting", None),
    ),
    (
        "CreateContainerConfigError: the missing secret, at once",
        _pod(
            "Pending",
            node="node-1",
            containerStatuses=[
                _container(waiting={"reason": "CreateContainerConfigError", "message": 'secret "db-creds" not found'})
            ],
        ),
        ("failed", "user"),
    ),
    (
        "InvalidImageName",
        _pod(
            "Pending",
            node="node-1",
            containerStatuses=[_container(waiting={"reason": "InvalidImageName", "message": "couldn't parse image"})],
        ),
        ("failed", "user"),
    ),
    ("phase unknown: the node stopped reporting", _pod("Unknown"), ("waiting", None)),
]


@pytest.mark.parametrize(("pod", "expected"), [pytest.param(p, e, id=n) for n, p, e in ROWS])
def test_state_table(pod: dict[str, Any], expected: tuple[str, str | None]) -> None:
    seen = observe(pod)
    assert (seen.state, seen.failure) == expected


def test_the_scheduler_message_and_the_missing_secret_are_kept() -> None:
    unschedulable = observe(ROWS[1][1])
    assert "Insufficient nvidia.com/gpu" in unschedulable.message
    config_error = observe(ROWS[14][1])
    assert 'secret "db-creds" not found' in config_error.message
    pull = observe(ROWS[13][1])
    assert pull.pull_backoff
    assert "nope:1" in pull.message


def test_exit_codes_of_ended_pods() -> None:
    assert observe(ROWS[4][1]).exit_code == 0
    assert observe(ROWS[5][1]).exit_code == 10
    assert observe(ROWS[6][1]).exit_code == 0
