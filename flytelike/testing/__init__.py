"""Public test helpers: run the remote task path, and the cloud backends' emulators, on one machine.

Nothing here is needed to run tasks; it exists so that the out-of-process path (code bundle, blob store,
entrypoint, controller) can be exercised and tried without a cluster or a cloud account.
"""

from flytelike.testing._launcher import Launched, Launcher, LaunchInput, ProcessExit
from flytelike.testing._subprocess import SubprocessBackend
from flytelike.testing.batch import BatchEmulator

__all__ = ["BatchEmulator", "LaunchInput", "Launched", "Launcher", "ProcessExit", "SubprocessBackend"]
