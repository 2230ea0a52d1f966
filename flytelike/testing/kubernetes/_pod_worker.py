"""One pod on the kubelet: its containers' images and configuration checked, their commands run as local
processes, and its status (phase, conditions, container states) written back to the API server as it changes."""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any, Final

import aiohttp
import anyio
import anyio.abc

from flytelike._quantity import Quantity
from flytelike.testing._launcher import Launched, Launcher, LaunchInput, ProcessExit
from flytelike.testing.kubernetes._client import ApiClient, HttpError
from flytelike.testing.kubernetes._env import ConfigError, container_env, expand
from flytelike.testing.kubernetes._images import image_problem
from flytelike.testing.kubernetes._scheduler import post_event
from flytelike.testing.kubernetes._status import now

__all__ = ["PodWorker"]

JSON = dict[str, Any]
COMPONENT: Final = "kubelet"
_CONFIG_RETRY: Final = 0.5
_PULL_BACKOFF: Final = 0.5
_log = logging.getLogger(__name__)


class _GoneError(Exception):
    """The pod no longer exists on the API server."""


class PodWorker:
    """Runs one pod bound to a node of this kubelet, until it ends or is deleted."""

    def __init__(
        self,
        pod: JSON,
        *,
        client: ApiClient,
        launcher: Launcher,
        log_dir: Path,
        missing_images: Collection[str],
    ) -> None:
        self.pod = pod
        self.name: str = pod["metadata"]["name"]
        self.namespace: str = pod["metadata"]["namespace"]
        self._client = client
        self._launcher = launcher
        self.log_dir = log_dir
        self._missing = missing_images
        self.launched: dict[str, Launched] = {}
        self._states: dict[str, JSON] = {
            c["name"]: {"waiting": {"reason": "ContainerCreating"}} for c in pod["spec"]["containers"]
        }
        self._phase = "Pending"
        self._reason = ""
        self._message = ""
        self._start_time = now()
        self._delete = anyio.Event()
        self._grace = 30.0
        self._deleting = False
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()

    def log_path(self, container: str) -> Path:
        return self.log_dir / f"{container}.log"

    def started(self, container: str) -> bool:
        return container in self.launched

    def request_delete(self, grace: float) -> None:
        """Stop the containers (SIGTERM, SIGKILL after ``grace`` seconds), then delete the pod for good."""
        self._grace = grace
        self._delete.set()

    async def run(self) -> None:
        """The pod's whole life on this node."""
        with self.scope:
            try:
                await self._lifecycle()
            except* _GoneError:
                pass
            except* (HttpError, aiohttp.ClientError, OSError) as group:
                # One pod's trouble with the API server must not stop the kubelet's other pods.
                _log.warning("pod %s/%s: %s", self.namespace, self.name, group.exceptions)
            finally:
                self.done.set()

    async def _lifecycle(self) -> None:
        await self._update()
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        with anyio.move_on_after(deadline if deadline is not None else math.inf) as deadline_scope:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._on_delete, tasks)
                await self._start_and_wait()
                tasks.cancel_scope.cancel()
        for name, process in self.launched.items():
            if "terminated" not in self._states[name] and process.exit is not None:
                self._terminated(name, process.exit)
        if self._deleting:
            await self._update()
            await self._delete_for_good()
            return
        if deadline_scope.cancelled_caught:
            self._phase = "Failed"
            self._reason = "DeadlineExceeded"
            self._message = "Pod was active on the node longer than the specified deadline"
            await self._event("Warning", "DeadlineExceeded", self._message)
        else:
            codes = [s["terminated"]["exitCode"] for s in self._states.values()]
            self._phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
        await self._update()

    async def _on_delete(self, tasks: anyio.abc.TaskGroup) -> None:
        await self._delete.wait()
        self._deleting = True
        if not self.launched:
            tasks.cancel_scope.cancel()
            return
        for name, process in self.launched.items():
            await self._event("Normal", "Killing", f"Stopping container {name}")
            tasks.start_soon(process.terminate, self._grace)

    async def _delete_for_good(self) -> None:
        try:
            await self._client.request(
                "DELETE",
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}",
                params={"gracePeriodSeconds": "0"},
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "preconditions": {"uid": self.pod["metadata"]["uid"]},
                },
            )
        except HttpError as error:
            if error.status not in (404, 409):
                raise

    async def _start_and_wait(self) -> None:
        specs = []
        for container in self.pod["spec"]["containers"]:
            await self._pull(container)
        for container in self.pod["spec"]["containers"]:
            specs.append(await self._configure(container))
        for container, launch in zip(self.pod["spec"]["containers"], specs, strict=True):
            name = container["name"]
            if launch is None:
                continue
            try:
                self.launched[name] = await self._launcher.start(launch)
            except OSError as error:
                self._states[name] = _terminated_state(128, "StartError", f"failed to start the command: {error}")
                continue
            self._states[name] = {"running": {"startedAt": now()}}
            await self._event("Normal", "Started", f"Started container {name}")
        if self.launched:
            self._phase = "Running"
        await self._update()
        async with anyio.create_task_group() as waits:
            for name, process in self.launched.items():
                waits.start_soon(self._wait, name, process)

    async def _wait(self, name: str, process: Launched) -> None:
        exit = await process.wait()
        self._terminated(name, exit)
        if not self._deleting and len(self.launched) > 1:
            await self._update()

    def _terminated(self, name: str, exit: ProcessExit) -> None:
        started = (self._states[name].get("running") or {}).get("startedAt", now())
        reason = "OOMKilled" if exit.oom_killed else "Completed" if exit.returncode == 0 else "Error"
        self._states[name] = _terminated_state(exit.returncode, reason, "", started)

    async def _pull(self, container: JSON) -> None:
        image = container["image"]
        name = container["name"]
        problem = image_problem(image)
        if problem is not None:
            self._states[name] = {"waiting": {"reason": "InvalidImageName", "message": problem}}
            await self._update()
            await self._event("Warning", "InspectFailed", problem)
            await anyio.sleep_forever()
        if image in self._missing:
            message = (
                f'Failed to pull image "{image}": rpc error: code = NotFound '
                f'desc = failed to pull and unpack image "{image}": not found'
            )
            self._states[name] = {"waiting": {"reason": "ErrImagePull", "message": message}}
            await self._update()
            await self._event("Warning", "Failed", message)
            await anyio.sleep(_PULL_BACKOFF)
            self._states[name] = {
                "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
            }
            await self._update()
            await self._event("Normal", "BackOff", f'Back-off pulling image "{image}"')
            await anyio.sleep_forever()

    async def _configure(self, container: JSON) -> LaunchInput | None:
        name = container["name"]
        reported = ""
        while True:
            try:
                env = await container_env(self._client, self.pod, container)
                break
            except ConfigError as error:
                if str(error) != reported:
                    reported = str(error)
                    self._states[name] = {"waiting": {"reason": "CreateContainerConfigError", "message": reported}}
                    await self._update()
                    await self._event("Warning", "Failed", f"Error: {reported}")
                await anyio.sleep(_CONFIG_RETRY)
        command = [expand(part, env) for part in [*(container.get("command") or []), *(container.get("args") or [])]]
        if not container.get("command"):
            message = "the emulator runs the container's command and has no image entrypoint: set command"
            self._states[name] = _terminated_state(128, "StartError", message)
            return None
        cwd = Path(container["workingDir"]) if container.get("workingDir") else None
        if cwd is not None and not cwd.is_dir():
            message = f'failed to start the container: chdir to cwd ("{cwd}"): no such file or directory'
            self._states[name] = _terminated_state(128, "StartError", message)
            return None
        memory = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        limit = Quantity.parse(str(memory)).ceil_to(1) if memory is not None else 0
        return LaunchInput(command, env=env, cwd=cwd, memory_limit=limit, output=self.log_path(name))

    async def _event(self, type_: str, reason: str, message: str) -> None:
        await post_event(self._client, self.pod, type_, reason, message, component=COMPONENT)

    def status(self) -> JSON:
        """The pod status as the kubelet reports it."""
        running = self._phase == "Running" and all("running" in s for s in self._states.values())
        conditions: list[JSON] = [
            {"type": "PodReadyToStartContainers", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": "True" if running else "False"},
            {"type": "ContainersReady", "status": "True" if running else "False"},
            {"type": "PodScheduled", "status": "True"},
        ]
        for condition in conditions:
            condition.update(lastProbeTime=None, lastTransitionTime=self._start_time)
        statuses = [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": "running" in self._states[c["name"]],
                "started": "running" in self._states[c["name"]],
                "restartCount": 0,
                "state": self._states[c["name"]],
                **({"containerID": f"emulator://{self.launched[c['name']].pid}"} if c["name"] in self.launched else {}),
            }
            for c in self.pod["spec"]["containers"]
        ]
        status: JSON = {
            "phase": self._phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self._start_time,
            "containerStatuses": statuses,
            "qosClass": (self.pod.get("status") or {}).get("qosClass", "BestEffort"),
        }
        if self._reason:
            status["reason"] = self._reason
            status["message"] = self._message
        return status

    async def _update(self) -> None:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": self.name}, "status": self.status()}
        try:
            await self._client.request("PUT", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status", body=body)
        except HttpError as error:
            if error.status == 404:
                raise _GoneError from None
            _log.warning("status of pod %s/%s: %s", self.namespace, self.name, error)


def _terminated_state(code: int, reason: str, message: str, started: str | None = None) -> JSON:
    finished = now()
    state: JSON = {"exitCode": code, "reason": reason, "startedAt": started or finished, "finishedAt": finished}
    if message:
        state["message"] = message
    return {"terminated": state}
