"""A tiny version of configs/av_digits.py for fast runs on the real data."""

import pytest

from configs import av_digits

TINY_OVERRIDES = {
    "model.encoders.image.features": (8, 16, 32),
    "model.encoders.image.embed_dim": 32,
    "model.encoders.audio.features": (8, 16, 32),
    "model.encoders.audio.embed_dim": 32,
    "model.fusion.hidden_dims": (64,),
    "optimizer.warmup_steps": 2,
    "batch_size": 32,
    "eval_batch_size": 1000,
    "num_train_steps": 12,
    "log_every_steps": 3,
    "eval_every_steps": 6,
    "checkpoint_every_steps": 4,
    "keep_checkpoints": 2,
}


def as_flags(overrides):
  """`--config.<key>=<value>` arguments; strings go in raw (no quotes), as
  config_flags would keep quotes as part of the value."""
  return [f"--config.{k}={v}" for k, v in overrides.items()]


@pytest.fixture
def tiny_config(prepared_data_dir):
  def make(**overrides):
    c = av_digits.get_config()
    for key, value in {**TINY_OVERRIDES, "data.data_dir": str(prepared_data_dir),
                       **overrides}.items():
      *parents, leaf = key.split(".")
      node = c
      for p in parents:
        node = node[p]
      node[leaf] = value
    return c
  return make
