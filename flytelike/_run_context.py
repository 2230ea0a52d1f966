"""Run-scoped defaults: what ``fl.Runner(...).with_context(...)`` sets for every task of the runs it starts.

Example:
    >>> from flytelike._run_context import RunContext
    >>> RunContext.build(name="nightly", labels={"team": "ml"}, env_vars={"MODE": "full"}).labels
    {'team': 'ml'}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from flytelike._frozendict import FrozenDict
from flytelike.errors import SpecError

__all__ = ["RunContext"]

_NAME = re.compile(r"[a-z0-9]([a-z0-9\-]{0,38}[a-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_VALUE_MAX = 256
_LABEL_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._\-/]{0,61}[A-Za-z0-9])?")


def _strings(value: object, where: str, key: re.Pattern[str], example: str) -> FrozenDict[str, str]:
    if value is None:
        return FrozenDict({})
    if not isinstance(value, Mapping):
        raise SpecError(where, value, "must be a mapping of names to strings", accepted=example)
    for k, v in value.items():
        if not isinstance(k, str) or not key.fullmatch(k):
            raise SpecError(f"{where} key", k, "not a valid name", accepted=example)
        if not isinstance(v, str):
            raise SpecError(f"{where}[{k!r}]", v, "values must be strings", accepted=f"{k!r}: {str(v)!r}")
    return FrozenDict(value)


def _labels(value: object) -> FrozenDict[str, str]:
    labels = _strings(value, "with_context.labels", _LABEL_KEY, "{'team': 'ml'}")
    for k, v in labels.items():
        if len(v) > _LABEL_VALUE_MAX or "\n" in v:
            raise SpecError(
                f"with_context.labels[{k!r}]", v, f"a label value is one line of at most {_LABEL_VALUE_MAX} characters",
                accepted="e.g. 'ml'",
            )  # fmt: skip
    return labels


@dataclass(frozen=True, slots=True)
class RunContext:
    """Defaults for every task of a run; a task's own settings win over them.

    Attributes:
        name: the run id's prefix (``nightly-3f9a2c``) instead of the date and time.
        labels: recorded on the run (``flytelike runs show``), for people and tools to find it by.
        env_vars: environment variables for every task, under the tasks' own ``env_vars``.
        overwrite_cache: every cached task runs and overwrites its cached result (``Cache(behavior="override")``).
        cache: False: no task of the run reads or writes the cache (a test that must run every task).
        record_outputs: keep every action's outputs in the run records, so that a rerun can recover them
            (``flytelike run`` does; it costs an encoding per action, so the library's default is off).
        rerun_of: the earlier run this run repeats (recorded on the run).
        recover: reuse what succeeded in ``rerun_of`` (same action id, task version and inputs) instead of running
            it again.
    """

    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: FrozenDict({}))
    env_vars: Mapping[str, str] = field(default_factory=lambda: FrozenDict({}))
    overwrite_cache: bool = False
    record_outputs: bool = False
    rerun_of: str | None = None
    recover: bool = False
    cache: bool = True

    @classmethod
    def build(
        cls,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        env_vars: Mapping[str, str] | None = None,
        overwrite_cache: bool = False,
        record_outputs: bool = False,
        rerun_of: str | None = None,
        recover: bool = False,
        cache: bool = True,
    ) -> RunContext:
        """Checked values; errors name ``with_context.<argument>``."""
        if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
            raise SpecError(
                "with_context.name",
                name,
                "not a run name",
                accepted="lowercase letters, digits and '-', e.g. 'nightly'",
            )
        if not isinstance(overwrite_cache, bool):
            raise SpecError("with_context.overwrite_cache", overwrite_cache, "must be True or False", accepted="True")
        for where, flag in (("record_outputs", record_outputs), ("recover", recover), ("cache", cache)):
            if not isinstance(flag, bool):
                raise SpecError(f"with_context.{where}", flag, "must be True or False", accepted="True")
        if recover and not rerun_of:
            raise SpecError(
                "with_context.recover", recover, "needs the run to recover from", accepted="rerun_of='r...'"
            )
        return cls(
            name=name,
            labels=_labels(labels),
            env_vars=_strings(env_vars, "with_context.env_vars", _ENV_NAME, "{'LOG_LEVEL': 'debug'}"),
            overwrite_cache=overwrite_cache,
            record_outputs=record_outputs,
            rerun_of=rerun_of,
            recover=recover,
            cache=cache,
        )

    def merged(self, over: RunContext) -> RunContext:
        """``over`` on top of this context: names and flags replaced, labels and env vars merged key by key."""
        return RunContext(
            name=over.name or self.name,
            labels=FrozenDict({**self.labels, **over.labels}),
            env_vars=FrozenDict({**self.env_vars, **over.env_vars}),
            overwrite_cache=over.overwrite_cache or self.overwrite_cache,
            record_outputs=over.record_outputs or self.record_outputs,
            rerun_of=over.rerun_of or self.rerun_of,
            recover=over.recover or self.recover,
            cache=over.cache and self.cache,
        )
