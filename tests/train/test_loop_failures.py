"""The train loop when a run is stopped: preemption signals, a changed
config on resume, a diverging loss, a classifier of the wrong size."""

import json
import os
import signal

import jax
import numpy as np
import pytest

from mmjax.train import loop
from mmjax.train.preemption import Preempted
from tests.train.test_loop import restore


def _with_step_hook(monkeypatch, hook):
  """Makes the loop's train step call `hook(step, state, metrics)` after each
  step (step = the state's step after the update) and return its result."""
  make = loop.steps.make_train_step_from_config

  def make_hooked(*args, **kwargs):
    train_step = make(*args, **kwargs)

    def hooked(state, batch):
      state, metrics = train_step(state, batch)
      return hook(int(state.step), state, metrics)
    return hooked
  monkeypatch.setattr(loop.steps, "make_train_step_from_config", make_hooked)


def test_sigterm_saves_the_current_step_and_resume_refuses_a_changed_run(
    tiny_config, tmp_path, monkeypatch):
  config = tiny_config(eval_splits=("test",))  # checkpoints every 4 steps

  def sigterm_at_5(step, state, metrics):
    if step == 5:
      os.kill(os.getpid(), signal.SIGTERM)
    return state, metrics
  _with_step_hook(monkeypatch, sigterm_at_5)
  handler = signal.getsignal(signal.SIGTERM)
  with pytest.raises(Preempted) as e:
    loop.train_and_evaluate(config, tmp_path)
  assert e.value.step == 5 and e.value.signal_name == "SIGTERM"
  assert signal.getsignal(signal.SIGTERM) is handler
  assert restore(tmp_path, config).step == 5  # saved at once, not at 4 or 8
  assert not (tmp_path / "results.json").exists()
  monkeypatch.undo()

  # Resuming with another seed and learning rate is refused before anything
  # is written; with allow_config_change it goes on (config.1.json).
  files = sorted(p.name for p in tmp_path.iterdir())
  changed = tiny_config(eval_splits=("test",), seed=1)
  changed.optimizer.learning_rate = 0.5
  with pytest.raises(ValueError, match=r"optimizer\.learning_rate, seed"):
    loop.train_and_evaluate(changed, tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == files

  launches = (tmp_path / "launches.jsonl").read_text().splitlines()
  assert [json.loads(x)["start_step"] for x in launches] == [0]
  assert not (tmp_path / "config.1.json").exists()
  # (Resuming to the end, bitwise as if never stopped: test_kill_resume.py.)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_config, tmp_path, monkeypatch):
  config = tiny_config(eval_splits=("test",))  # logs every 3, saves every 4

  def diverge_from_5(step, state, metrics):
    if step >= 5:
      state = state.replace(params=jax.tree.map(lambda p: p * np.nan,
                                                state.params))
      metrics = {**metrics, "loss": metrics["loss"] * np.nan}
    return state, metrics
  _with_step_hook(monkeypatch, diverge_from_5)
  with pytest.raises(loop.TrainingDiverged, match="at step 5"):
    loop.train_and_evaluate(config, tmp_path)
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert steps == [4]
  state = restore(tmp_path, config)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))
  assert not (tmp_path / "results.json").exists()


def test_num_classes_must_match_the_dataset(tiny_config, tmp_path):
  config = tiny_config()
  config.model.num_classes = 7
  with pytest.raises(ValueError, match=r"num_classes=7 .* has 10 classes"):
    loop.train_and_evaluate(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()
