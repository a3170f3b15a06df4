"""Tiny av_digits runs trained once per session for the export and model
card tests: the default config (its recipe: auxiliary heads, modality
dropout, CMVN, SpecAugment) and an attention fusion, at the tests' tiny
sizes, a few steps."""

import pytest

from tests.train.conftest import TINY_OVERRIDES

# The tests' tiny encoder sizes (tests/train/conftest.py) and a short run;
# the recipe keys of TINY_OVERRIDES are left at the config's defaults.
SIZES = {k: TINY_OVERRIDES[k] for k in (
    "model.encoders.image.features", "model.encoders.image.embed_dim",
    "model.encoders.audio.features", "model.encoders.audio.embed_dim")}
SHORT = {"num_train_steps": 4, "checkpoint_every_steps": 4,
         "eval_every_steps": 100, "log_every_steps": 2, "batch_size": 32,
         "optimizer.warmup_steps": 1, "eval_splits": ("validation",)}
RUNS = {
    "default": (None, {"model.fusion.hidden_dims": (64,)}),
    "cross_attention": ("fusion=cross_attention", {
        "model.fusion.dim": 32, "model.fusion.mlp_dim": 64,
        "model.fusion.num_heads": 2, "model.fusion.num_layers": 1}),
}


def tiny_config(name: str, data_dir):
  """The config of run `name` of `RUNS` on the prepared data."""
  from configs import av_digits  # pylint: disable=g-import-not-at-top
  arg, extra = RUNS[name]
  config = av_digits.get_config(arg)
  for key, value in {**SIZES, **SHORT, **extra,
                     "data.data_dir": str(data_dir)}.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, prepared_data_dir):
  """`train(name) -> (config, workdir)`, each run of `RUNS` trained once."""
  from mmjax.train import loop  # pylint: disable=g-import-not-at-top
  done = {}

  def train(name):
    if name not in done:
      config = tiny_config(name, prepared_data_dir)
      workdir = tmp_path_factory.mktemp(f"export_{name}")
      loop.train_and_evaluate(config, workdir)
      done[name] = (config, workdir)
    return done[name]
  return train
