"""Preemption: a SIGTERM or SIGINT becomes a checkpoint at the current step
and a clean exit, so a preempted job resumes where it stopped.

Single process: the first SIGTERM or SIGINT is recorded and the train loop
stops after the step in flight (`PreemptionGuard.reached`); a second signal
restores the previous handlers and re-raises itself, so it exits at once
(Orbax writes each checkpoint into a temporary folder and renames it when
complete, so an interrupted write is never restored).

Several processes (`jax.distributed`): schedulers send SIGTERM to every
process of a job, and the processes must agree on the step to save, or the
checkpoint's collective write would hang. JAX's preemption service (on by
default, `jax_enable_preemption_service`) catches SIGTERM and agrees on
that step; `reached` asks it through
`jax.experimental.multihost_utils.reached_preemption_sync_point`, the same
protocol as Orbax's `CheckpointManager.reached_preemption`. SIGINT keeps
its default (KeyboardInterrupt) there: one process cannot make the others
stop at the same step.
"""

import signal
import sys
import threading
from typing import Optional

import jax
from jax.experimental import multihost_utils


class Preempted(Exception):
  """Training stopped on a preemption signal after saving a checkpoint.

  Attributes:
    step: the step of the checkpoint saved.
    signal_name: "SIGTERM" or "SIGINT".
  """

  def __init__(self, step: int, signal_name: str):
    super().__init__(
        f"{signal_name} received: saved the checkpoint of step {step}; run "
        f"the same command again to resume from it")
    self.step = step
    self.signal_name = signal_name


class PreemptionGuard:
  """Context manager that installs the handlers (main thread only) and
  restores the previous ones on exit.

  Usage:
    with PreemptionGuard() as guard:
      for step in ...:
        state = train_step(state, batch)
        if guard.reached(step):
          save(state); raise Preempted(step, guard.signal_name)
  """

  def __init__(self):
    self.signal_name: Optional[str] = None
    self._previous = {}

  def __enter__(self) -> "PreemptionGuard":
    if threading.current_thread() is not threading.main_thread():
      return self  # Python delivers signals to the main thread only.
    # Several processes: SIGTERM is JAX's preemption service's, SIGINT keeps
    # its default.
    signums = (() if jax.process_count() > 1
               else (signal.SIGTERM, signal.SIGINT))
    for signum in signums:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    self._restore()

  def _restore(self) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def _handle(self, signum, frame) -> None:
    del frame
    name = signal.Signals(signum).name
    if self.signal_name is not None:
      print(f"{name} received again: exiting without waiting for the "
            f"checkpoint", file=sys.stderr, flush=True)
      self._restore()
      signal.raise_signal(signum)
      return
    self.signal_name = name
    print(f"{name} received: saving a checkpoint after the current step, "
          f"then exiting (send it again to exit at once)", file=sys.stderr,
          flush=True)

  def reached(self, step: int) -> bool:
    """Whether to save and stop after `step` (every process gets the same
    answer at the same step; call it at every step on every process)."""
    if jax.process_count() > 1:
      if multihost_utils.reached_preemption_sync_point(step):
        self.signal_name = self.signal_name or "SIGTERM"
        return True
      return False
    return self.signal_name is not None
