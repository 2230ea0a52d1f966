"""``flytelike logs RUN [ACTION]``: what a run's tasks printed, from their log files and the records.

An action that printed more than the records keep of it (64 KiB) has a file per attempt under
``$FLYTELIKE_HOME/logs/<run>/<action>/<attempt>.log`` (see :mod:`flytelike._storage._spool`), and the records name
its folder; the output of one that printed less is in its record alone, split into attempts and streams by the
run's index. The records' tail of an action whose files are gone (or of a run recorded before output went to files)
is printed as it is. ``--follow`` polls the files and the records, so it works on a run going on in another
process, and stops once the run has ended and everything it printed was shown; output kept in the records alone is
shown once its action has ended (until then the records hold it as of their last write, half a second ago).
"""

from __future__ import annotations

import bisect
import codecs
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from flytelike._cli._runs import _fail, _run_records
from flytelike._config import load_settings
from flytelike._executor._model import ActionRecord, RunState
from flytelike._storage import AttemptLog, KeptLog, RecordStore, RunIndex, attempt_logs, kept_logs
from flytelike._storage._records import natural_key
from flytelike.errors import FlytelikeError

__all__ = ["logs"]

_POLL = 0.2
_SETTLE = 0.5  # more than the spool's flush interval
_BLOCK = 1024 * 1024
_LIVE = frozenset({RunState.QUEUED, RunState.RUNNING})
_ALL = frozenset({"out", "err", "all"})


class _Shown:
    """One attempt's log, and how far it has been printed."""

    def __init__(self, log: AttemptLog | KeptLog, offset: int = 0) -> None:
        self.log = log
        self.offset = offset
        self.line_start = True
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def new_text(self, streams: frozenset[str], timestamps: bool) -> Iterator[str]:
        """What was written since the last call, block by block, keeping ``streams``, lines stamped if asked."""
        end = self.log.size()
        if streams == _ALL and not timestamps:
            while self.offset < end:
                data = self.log.read(self.offset, min(end, self.offset + _BLOCK))
                if not data:
                    return
                self.offset += len(data)
                yield self.decoder.decode(data)
            return
        index = self.log.index()
        starts = [entry[0] for entry in index]
        first = max(0, bisect.bisect_right(starts, self.offset) - 1)
        for i in range(first, len(index)):
            start, when, stream = index[i]
            stop = min(index[i + 1][0] if i + 1 < len(index) else end, end)
            lo = max(start, self.offset)
            if stop <= lo:
                continue
            if stream in streams:
                for at in range(lo, stop, _BLOCK):
                    text = self.decoder.decode(self.log.read(at, min(stop, at + _BLOCK)))
                    yield self._stamped(text, when) if timestamps else text
            self.offset = stop

    def _stamped(self, text: str, when: float) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when)) + f".{int(when * 1000) % 1000:03d} "
        out: list[str] = []
        for line in text.splitlines(keepends=True):
            out.append(stamp + line if self.line_start else line)
            self.line_start = line.endswith("\n")
        return "".join(out)


class _Printer:
    """Prints attempts' logs, under ``== ACTION TASK ==`` headers when every action of the run is shown."""

    def __init__(self, *, headers: bool, streams: frozenset[str], timestamps: bool, tail: int | None) -> None:
        self.headers = headers
        self.streams = streams
        self.timestamps = timestamps
        self.tail = tail
        self.shown: dict[tuple[str, int], _Shown] = {}
        self.current: tuple[str, int] | None = None
        self.at_line_start = True
        self.found = False
        self.actions: dict[str, ActionRecord] = {}  # the actions shown so far, by id
        self.index: RunIndex | None = None  # the run's, read on pass after pass
        # While following: actions whose output may be in their records alone, not shown yet.
        self.kept_waiting: set[str] = set()

    def attempt(self, action: ActionRecord, attempt: int, attempts: int, log: AttemptLog | KeptLog) -> None:
        key = (action.id, attempt)
        shown = self.shown.get(key)
        if shown is None:
            shown = self.shown[key] = _Shown(log, log.tail_offset(self.tail) if self.tail is not None else 0)
        self.found = True
        for text in shown.new_text(self.streams, self.timestamps):
            self._print(key, action, attempts, text)

    def kept_tail(self, action: ActionRecord) -> None:
        """The tail the records kept, for an action without log files; once."""
        key = (action.id, 0)
        if key in self.shown or not action.logs:
            return
        self.shown[key] = _Shown(AttemptLog(Path()))
        self.found = True
        if action.log_path:
            click.echo(
                f"(the log files of {action.id} are gone; the end of its output, as the records kept it, follows)",
                err=True,
            )
        text = "".join(action.logs)
        if self.tail is not None:
            text = "".join(text.splitlines(keepends=True)[-self.tail :]) if self.tail else ""
        self._print(key, action, 1, text)

    def _print(self, key: tuple[str, int], action: ActionRecord, attempts: int, text: str) -> None:
        if not text:
            return
        if self.headers and key != self.current:
            if not self.at_line_start:
                sys.stdout.write("\n")
            more = f" (attempt {key[1]})" if attempts > 1 else ""
            sys.stdout.write(f"== {action.id} {action.task}{more} ==\n")
        self.current = key
        sys.stdout.write(text)
        sys.stdout.flush()
        self.at_line_start = text.endswith("\n")

    def finish(self) -> None:
        if not self.at_line_start:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _show_new(
    printer: _Printer,
    store: RecordStore,
    run_id: str,
    home: Path,
    action_id: str | None,
    attempt: int | None,
    *,
    tails: bool,
) -> None:
    """Print what is new in the logs of the run's actions (or of ``action_id``), in natural id order; with
    ``tails``, the tails kept in the records of those without log files (not while the run goes on: their files
    may not be written yet).

    The first pass reads every action's record (their log folders, and the tails of those without files); later
    passes, while following, only look for action folders that appeared since (a run of 100,000 actions is not read
    again five times a second).
    """
    known = printer.actions
    if action_id is not None:
        if action_id not in known:
            one = store.action(run_id, action_id)
            if one is not None:
                known[action_id] = one
    elif not known:
        known.update((a.id, a) for a in store.actions(run_id))
    else:
        try:
            names = os.listdir(home / run_id)
        except OSError:
            names = []
        for name in names:
            if name not in known:
                found = store.action(run_id, name)
                if found is not None:
                    known[name] = found
    if printer.index is None:
        printer.index = RunIndex(home / run_id)
    index = printer.index
    added = index.read()
    for key in sorted(known, key=natural_key):
        action = known[key]
        folder = Path(action.log_path) if action.log_path else home / run_id / action.id
        numbers = attempt_logs(folder)
        for n in numbers:
            if attempt is None or n == attempt:
                printer.attempt(action, n, len(numbers), AttemptLog(folder / f"{n}.log"))
        if numbers or not tails or not action.logs:
            continue
        if not _show_kept(printer, action, index, attempt) and attempt in (None, 1):
            printer.kept_tail(action)
    if not tails:
        _show_kept_ended(printer, store, run_id, home, index, {a for a in added if action_id in (None, a)}, attempt)


def _show_kept(printer: _Printer, action: ActionRecord, index: RunIndex, attempt: int | None) -> bool:
    """Print the output kept in the action's record alone (it printed less than the records keep), by attempt;
    False if it has none (it has files, or the run was recorded before output was spooled)."""
    entries = index.entries.get(action.id)
    if action.log_path is not None or not action.logs or not entries:
        return False
    kept = kept_logs(entries, "".join(action.logs))
    for n, log in kept.items():
        if attempt is None or n == attempt:
            printer.attempt(action, n, len(kept), log)
    return bool(kept)


def _show_kept_ended(
    printer: _Printer,
    store: RecordStore,
    run_id: str,
    home: Path,
    index: RunIndex,
    added: set[str],
    attempt: int | None,
) -> None:
    """While following a run: the output kept in the records alone of actions that ended a moment ago (then
    their record and the run's index hold everything they printed). Actions that printed are found in the index,
    so only those are read again, pass after pass, until they end."""
    waiting = printer.kept_waiting
    waiting |= added
    settled = time.time() - _SETTLE
    for aid in sorted(waiting, key=natural_key):
        found = None if os.path.isdir(home / run_id / aid) else store.action(run_id, aid)
        if found is None or found.log_path is not None:
            waiting.discard(aid)  # its files are shown as they grow (or it is not an action of the run)
            continue
        if found.state.done and found.ended is not None and found.ended <= settled:
            _show_kept(printer, found, index, attempt)
            waiting.discard(aid)


def _logs_home() -> Path:
    try:
        return load_settings().home / "logs"
    except FlytelikeError as e:
        raise click.ClickException(str(e)) from None


@click.command()
@click.argument("run_id", metavar="RUN")
@click.argument("action_id", metavar="[ACTION]", required=False)
@click.option("--attempt", type=click.IntRange(min=1), help="Only this attempt (default: every attempt).")
@click.option("--tail", "-n", type=click.IntRange(min=0), help="Only the last N lines of each attempt's log.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what the run prints until it ends.")
@click.option("--stdout", "only_stdout", is_flag=True, help="Only what went to stdout.")
@click.option("--stderr", "only_stderr", is_flag=True, help="Only what went to stderr.")
@click.option("--timestamps", "-t", is_flag=True, help="Start each line with the time it was written.")
@click.option("--remote", is_flag=True, help="Read them from the control plane ([remote] endpoint, or --endpoint).")
@click.option("--endpoint", metavar="URL", help="The control plane (implies --remote). Config: [remote] endpoint.")
def logs(
    remote: bool,
    endpoint: str | None,
    run_id: str,
    action_id: str | None,
    attempt: int | None,
    tail: int | None,
    follow: bool,
    only_stdout: bool,
    only_stderr: bool,
    timestamps: bool,
) -> None:
    """Print what a run's tasks printed (stdout and stderr).

    RUN is a run id or a unique prefix of one. Without ACTION, every action that printed anything is shown under a
    header line `== ACTION TASK ==` (with `(attempt N)` when it printed in several attempts). A process-isolated
    task's stdout and stderr are one stream, shown with either `--stdout` or `--stderr`.
    """
    if only_stdout and only_stderr:
        raise click.UsageError("--stdout and --stderr cannot be given together: give one, or neither for both")
    if remote or endpoint:
        # Imported here: the control plane's client loads grpc, which local logs never need.
        from flytelike._cli._remote_runs import logs_remote

        logs_remote(endpoint, run_id, action_id, attempt=attempt, follow=follow)
        return
    streams = frozenset({"out", "all"} if only_stdout else {"err", "all"} if only_stderr else _ALL)
    home = _logs_home()
    printer = _Printer(headers=action_id is None, streams=streams, timestamps=timestamps, tail=tail)
    with _run_records(run_id) as (store, run):
        try:
            was_live = False
            while True:
                live = store.run(run.id)
                ended = not follow or live is None or live.state not in _LIVE
                if ended and was_live:
                    # The run's end is recorded just before its last output is flushed to the files. The records
                    # read while it went on hold the tails of then: they are read again.
                    time.sleep(_SETTLE)
                    printer.actions.clear()
                was_live = not ended
                _show_new(printer, store, run.id, home, action_id, attempt, tails=ended)
                if ended:
                    break
                time.sleep(_POLL)
        except BrokenPipeError:  # `flytelike logs RUN | head`: the reader has seen enough
            sys.stderr.close()
            return
        except KeyboardInterrupt:  # the way out of --follow
            printer.finish()
            return
        if action_id is not None and store.action(run.id, action_id) is None:
            _fail(f"run {run.id} has no action {action_id!r} (see `flytelike runs show {run.id}`)")
    printer.finish()
    if not printer.found:
        click.echo("(no output captured)", err=True)
