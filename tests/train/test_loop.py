"""Integration: the shared train loop on the real AV digits data, tiny model."""

import json
import os
import signal

import jax
import numpy as np
import pytest

from mmjax import checkpoint
from mmjax.train import loop
from mmjax.train.preemption import Preempted
from tests.data.conftest import write_fake_manual_dir


def read_metrics(workdir, split):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["split"] == split]


def restore(workdir, config):
  """The latest train_state in `workdir`, restored through Orbax."""
  _, _, target, manager, _ = loop._setup(config, workdir, read_only=True)  # pylint: disable=protected-access
  state = checkpoint.restore_latest(manager, target)
  manager.close()
  return state


def test_train_evaluate_and_outputs(tiny_config, tmp_path):
  config = tiny_config(num_train_steps=30, log_every_steps=5,
                       eval_every_steps=15, checkpoint_every_steps=10)
  config.optimizer.warmup_steps = 5
  results = loop.train_and_evaluate(config, tmp_path)

  assert set(results) == {"train", "validation", "test"}
  assert results["test"]["num_examples"] == 2000
  assert results["validation"]["num_examples"] == 1000
  train = read_metrics(tmp_path, "train")
  assert [r["step"] for r in train] == [5, 10, 15, 20, 25, 30]
  # Measured on CPU (2026-11-23): mean training loss 2.52 nats over steps
  # 1-5 and 2.18 over steps 26-30 (chance is 2.30), test accuracy 0.27
  # (chance 0.10) after 30 steps of 32 examples.
  assert train[-1]["loss"] < train[0]["loss"] - 0.2, train
  assert results["test"]["accuracy"] > 0.2
  assert [r["step"] for r in read_metrics(tmp_path, "validation")] == [15]
  final = read_metrics(tmp_path, "final_test")
  assert [r["step"] for r in final] == [30]
  assert final[0]["accuracy"] == results["test"]["accuracy"]
  assert json.loads((tmp_path / "results.json").read_text()) == results
  cm = json.loads((tmp_path / "confusion_test.json").read_text())["matrix"]
  assert np.sum(cm) == 2000
  assert np.trace(cm) == round(results["test"]["accuracy"] * 2000)
  for split in ("train", "validation", "test"):
    assert (tmp_path / f"confusion_{split}.png").stat().st_size > 1000
  assert list((tmp_path / "tensorboard" / "train").glob("events.out.tfevents.*"))
  assert json.loads((tmp_path / "config.json").read_text())["num_train_steps"] == 30
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                if p.name.isdigit()) == [20, 30]  # keep_checkpoints=2

  # The checkpoint restores to the trained model: scoring it again through
  # --mode=evaluate reproduces the test metrics of results.json.
  out_dir = loop.evaluate_checkpoint(config, tmp_path)
  again = json.loads((out_dir / "results.json").read_text())
  assert again["test"]["accuracy"] == results["test"]["accuracy"]
  assert again["test"]["loss"] == pytest.approx(results["test"]["loss"], rel=1e-5)
  assert loop.evaluate_checkpoint(config, tmp_path) != out_dir  # never overwritten

  # --mode=evaluate on a dataset built from other raw files, with another
  # optimizer (other optimizer state): only the parameters are restored.
  config.optimizer.name = "sgd"
  config.optimizer.grad_clip_norm = 0.0
  config.data.manual_dir = str(write_fake_manual_dir(tmp_path / "other_raw"))
  other_dir = loop.evaluate_checkpoint(config, tmp_path)
  other = json.loads((other_dir / "results.json").read_text())
  assert {k: v["num_examples"] for k, v in other.items()} == {
      "train": 125, "validation": 25, "test": 50}
  source = json.loads((other_dir / "source.json").read_text())
  assert source["checkpoint_step"] == 30
  assert source["manual_dir"] == config.data.manual_dir
  assert source["pp_eval"] == config.pp_eval.to_dict()
  assert json.loads((tmp_path / "results.json").read_text()) == results


class Interrupt(Exception):
  pass


def test_interrupted_run_resumes_to_the_same_state(tiny_config, tmp_path, monkeypatch):
  # A BatchNorm ResNet, so that the train_state carries batch statistics.
  config = tiny_config("image=resnet", eval_splits=("test",))
  loop.train_and_evaluate(config, tmp_path / "uninterrupted")
  reference = restore(tmp_path / "uninterrupted", config)

  save = checkpoint.save

  def save_then_crash(manager, state):
    save(manager, state)
    if int(state.step) == 8:
      raise Interrupt("killed after the checkpoint of step 8")

  monkeypatch.setattr(checkpoint, "save", save_then_crash)
  with pytest.raises(Interrupt):
    loop.train_and_evaluate(config, tmp_path / "resumed")
  assert not (tmp_path / "resumed" / "results.json").exists()
  at_crash = restore(tmp_path / "resumed", config)
  assert int(at_crash.step) == 8
  monkeypatch.setattr(checkpoint, "save", save)

  loop.train_and_evaluate(config, tmp_path / "resumed")
  resumed = restore(tmp_path / "resumed", config)
  info = json.loads((tmp_path / "resumed" / "run_info.json").read_text())
  assert info["resumed_from_step"] == 8 and info["steps"] == 12
  assert int(resumed.step) == int(reference.step) == 12
  # Same data order, dropout and optimizer state after the resume: on CPU the
  # resumed run reproduces the uninterrupted one exactly (Adam moments and
  # BatchNorm statistics too).
  assert jax.tree.leaves(resumed.batch_stats)
  assert not np.allclose(jax.tree.leaves(resumed.batch_stats)[0],
                         jax.tree.leaves(at_crash.batch_stats)[0])
  for name, a, b in [("params", reference.params, resumed.params),
                     ("opt_state", reference.opt_state, resumed.opt_state),
                     ("batch_stats", reference.batch_stats, resumed.batch_stats)]:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
  # The optimizer state was restored, not re-initialised: Adam's step count
  # continued from 8.
  counts = [int(x) for x in jax.tree.leaves(resumed.opt_state)
            if np.asarray(x).dtype == np.int32 and np.asarray(x).ndim == 0]
  assert counts and all(c == 12 for c in counts)


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

  loop.train_and_evaluate(config, tmp_path)
  info = json.loads((tmp_path / "run_info.json").read_text())
  assert info["resumed_from_step"] == 5 and info["steps"] == 12
  launches = (tmp_path / "launches.jsonl").read_text().splitlines()
  assert [json.loads(x)["start_step"] for x in launches] == [0, 5]
  assert not (tmp_path / "config.1.json").exists()


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
