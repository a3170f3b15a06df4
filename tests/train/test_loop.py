"""Integration: the shared train loop on the real AV digits data, tiny model."""

import json

import jax
import numpy as np
import pytest

from mmjax import checkpoint, objectives
from mmjax.evaluation import restore as eval_restore
from mmjax.train import loop
from tests.data.conftest import write_fake_manual_dir


def read_metrics(workdir, split):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["split"] == split]


def restore(workdir, config):
  """The latest train_state in `workdir`, restored through Orbax."""
  run = loop.setup(config, workdir, read_only=True,
                   objective=objectives.resolve(config))
  state = checkpoint.restore_latest(run.manager, run.state)
  run.manager.close()
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
  # --mode=evaluate reproduces the test metrics of results.json. (It scores
  # config.eval_splits: the test split alone, the one compared, rather than
  # the 8,000 examples of all three, twice.)
  eval_splits = config.eval_splits
  config.eval_splits = ("test",)
  out_dir = eval_restore.evaluate_checkpoint(config, tmp_path)
  again = json.loads((out_dir / "results.json").read_text())
  assert set(again) == {"test"}
  assert again["test"]["accuracy"] == results["test"]["accuracy"]
  assert again["test"]["loss"] == pytest.approx(results["test"]["loss"], rel=1e-5)
  assert eval_restore.evaluate_checkpoint(config, tmp_path) != out_dir  # never overwritten
  config.eval_splits = eval_splits

  # --mode=evaluate on a dataset built from other raw files, with another
  # optimizer (other optimizer state): only the parameters are restored.
  config.optimizer.name = "sgd"
  config.optimizer.grad_clip_norm = 0.0
  config.data.manual_dir = str(write_fake_manual_dir(tmp_path / "other_raw"))
  other_dir = eval_restore.evaluate_checkpoint(config, tmp_path)
  other = json.loads((other_dir / "results.json").read_text())
  assert {k: v["num_examples"] for k, v in other.items()} == {
      "train": 125, "validation": 25, "test": 50}
  source = json.loads((other_dir / "source.json").read_text())
  assert source["checkpoint_step"] == 30
  assert source["manual_dir"] == config.data.manual_dir
  assert source["pp_eval"] == config.pp_eval.to_dict()
  assert json.loads((tmp_path / "results.json").read_text()) == results
