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
    # The plain recipe, on which the tests' measured bounds were taken (the
    # config's default adds modality dropout, auxiliary heads, CMVN and
    # SpecAugment, which learn more slowly in a few steps and reduce in
    # another float order).
    "aux_loss_weight": 0.0,
    "modality_dropout.image": 0.0,
    "modality_dropout.audio": 0.0,
    "model.encoders.audio.normalization": "utterance",
    "model.encoders.audio.freq_masks": 0,
    "model.encoders.audio.time_masks": 0,
}


# The image encoder as a tiny ResNet with BatchNorm: statistics in the
# train_state (`configs/av_digits.py:image=resnet`).
TINY_RESNET_BATCHNORM = {
    "model.encoders.image.stage_sizes": (1, 1),
    "model.encoders.image.width": 8,
    "model.encoders.image.norm": "batch",
    "model.encoders.image.embed_dim": 32,
}


def tiny_overrides(arg=None):
  """TINY_OVERRIDES for `get_config(arg)`; "image=resnet" swaps in a tiny
  BatchNorm ResNet for the image CNN's keys."""
  overrides = dict(TINY_OVERRIDES)
  if arg and "image=resnet" in arg:
    overrides = {k: v for k, v in overrides.items()
                 if not k.startswith("model.encoders.image.")}
    overrides.update(TINY_RESNET_BATCHNORM)
  return overrides


def as_flags(overrides):
  """`--config.<key>=<value>` arguments; strings go in raw (no quotes), as
  config_flags would keep quotes as part of the value."""
  return [f"--config.{k}={v}" for k, v in overrides.items()]


@pytest.fixture
def tiny_config(prepared_data_dir):
  def make(arg=None, **overrides):
    c = av_digits.get_config(arg)
    for key, value in {**tiny_overrides(arg), "data.data_dir": str(prepared_data_dir),
                       **overrides}.items():
      *parents, leaf = key.split(".")
      node = c
      for p in parents:
        node = node[p]
      node[leaf] = value
    return c
  return make
