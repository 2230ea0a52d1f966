"""The process a task runs in, outside the controller: the one ``execute()`` core and the worker protocol.

- :mod:`flytelike._worker._frames`: frames of the protocol on a pipe (standard library and generated messages
  only; the controller's backends import it).
- :mod:`flytelike._worker._execute`: ``execute(ExecuteInput) -> ExecuteResult``, what a warm worker and the
  container entrypoint both run.
- :mod:`flytelike._worker._children`: calls the running task makes to other tasks, sent to the controller.
- :mod:`flytelike._worker._pipe`: the warm worker, ``python -m flytelike._worker LOG_PATH``.

This module imports nothing, so importing the frames does not import the SDK.
"""
