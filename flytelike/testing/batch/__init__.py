"""An AWS Batch emulator on moto: Batch, S3 and CloudWatch Logs on a loopback port, jobs run as local processes.

See ``docs/emulators.md``. moto is loaded only when an emulator starts.
"""

from flytelike.testing.batch._emulator import BatchEmulator
from flytelike.testing.batch._faults import Counters, Faults
from flytelike.testing.batch._helpers import wait_for_job
from flytelike.testing.batch._record import JobRecord, JobSpec, Transition
from flytelike.testing.batch._smoke import MotoChangedError, check_moto

__all__ = [
    "BatchEmulator",
    "Counters",
    "Faults",
    "JobRecord",
    "JobSpec",
    "MotoChangedError",
    "Transition",
    "check_moto",
    "wait_for_job",
]
