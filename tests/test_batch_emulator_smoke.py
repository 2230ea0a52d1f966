"""The emulator replaces parts of moto's Batch implementation: if moto's internals change, this fails loudly,
naming what changed."""

from __future__ import annotations

from typing import Any

import pytest

from flytelike.testing.batch import MotoChangedError, _smoke, check_moto


def test_the_installed_moto_has_what_the_emulator_relies_on() -> None:
    assert _smoke.moto_problems() == []
    check_moto()


def test_a_changed_signature_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.batch.models import BatchBackend

    def submit_job(self: Any, job_name: str, job_definition: str, queue: str) -> None: ...

    monkeypatch.setattr(BatchBackend, "submit_job", submit_job)
    with pytest.raises(MotoChangedError) as raised:
        check_moto()
    assert "moto.batch.models.BatchBackend.submit_job now takes (self, job_name, job_definition, queue)" in str(
        raised.value
    )


def test_a_missing_class_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.batch.models

    monkeypatch.delattr(moto.batch.models, "ComputeEnvironment")
    problems = _smoke.moto_problems()
    assert any(p.startswith("moto.batch.models.ComputeEnvironment.__init__ is gone") for p in problems)


def test_a_header_moto_stops_reading_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.responses import BaseResponse

    def get_current_account(self: Any) -> str:
        return "123456789012"

    monkeypatch.setattr(BaseResponse, "get_current_account", get_current_account)
    assert any("x-moto-account-id" in p for p in _smoke.moto_problems())


def test_another_moto_version_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_smoke, "version", lambda name: "5.3.0")
    assert _smoke.moto_problems()[0] == "moto 5.3.0 is installed; the emulator is written against moto==5.2.5"


def test_an_attribute_moto_no_longer_sets_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _smoke, "_ATTRIBUTES", (("moto.batch.models", "Job.__init__", ("self.job_id", "self.retries")),)
    )
    assert _smoke.moto_problems() == [
        "moto.batch.models.Job.__init__ no longer sets self.retries, which the emulator uses"
    ]
