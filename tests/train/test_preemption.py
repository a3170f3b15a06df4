"""PreemptionGuard: the first signal is recorded, a second one goes through."""

import os
import signal

import pytest

from mmjax.train.preemption import PreemptionGuard


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_is_recorded_and_handlers_are_restored(signum):
  before = signal.getsignal(signum)
  with PreemptionGuard() as guard:
    assert not guard.reached(0)
    os.kill(os.getpid(), signum)
    assert guard.reached(1)
    assert guard.signal_name == signal.Signals(signum).name
  assert signal.getsignal(signum) is before


def test_second_signal_exits_at_once():
  # Python's default SIGINT handler as the previous one (a pytest-xdist
  # worker ignores SIGINT).
  before = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with PreemptionGuard() as guard:
      os.kill(os.getpid(), signal.SIGINT)
      assert guard.reached(3)
      # The previous handler (KeyboardInterrupt) runs.
      with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  finally:
    signal.signal(signal.SIGINT, before)
