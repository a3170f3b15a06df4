"""Evaluation input cached in host memory when it fits
`config.eval_cache_max_bytes`, streamed otherwise: the same batches and the
same metrics (real av_digits data)."""

import logging
import warnings

import numpy as np
import pytest

from configs import av_digits
from mmjax import objectives
from mmjax.data import memory, pipeline
from mmjax.data.builders import registry as datasets
from mmjax.train import loop

MIB = 2**20


@pytest.fixture(scope="module")
def config(prepared_data_dir):
  from tests.train.conftest import tiny_overrides  # pylint: disable=g-import-not-at-top
  c = av_digits.get_config()
  for key, value in {**tiny_overrides(), "data.data_dir": str(prepared_data_dir),
                     "eval_splits": ("validation",)}.items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def batches(config, cache_max_bytes, caplog):
  """The validation batches of two passes, and what the pipeline logged."""
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="absl"):
    ds, n = pipeline.eval_batches(
        datasets.get_builder(config.data), "validation",
        modalities=config.modalities, pp=config.pp_eval, global_batch_size=384,
        cache_max_bytes=cache_max_bytes)
  passes = [list(ds.as_numpy_iterator()) for _ in range(2)]
  assert len(passes[0]) == n == 3  # 1,000 examples -> 3 x 384
  return passes, caplog.text


def test_eval_batches_cache_only_what_fits_and_equal_streamed(config, caplog):
  assert av_digits.get_config().eval_cache_max_bytes == (
      memory.EVAL_CACHE_MAX_BYTES)
  builder = datasets.get_builder(config.data)
  ds, _ = pipeline.eval_batches(builder, "validation",
                                modalities=config.modalities,
                                pp=config.pp_eval, global_batch_size=384)
  spec = ds.element_spec
  # Per example: image float32 [28, 28, 1], audio float32 [T], label, mask.
  per_example = 4 * (28 * 28 + spec["audio"].shape[1] + 2)
  needed = 3 * 384 * per_example
  assert needed > 3 * MIB  # the audio dominates: 8,000 samples per example

  cached, log = batches(config, needed, caplog)
  assert "Evaluation split 'validation'" in log and ", cached (" in log
  streamed, log = batches(config, needed - 1, caplog)
  assert "streamed at every evaluation" in log
  never, log = batches(config, 0, caplog)
  assert "Evaluation split" not in log  # 0: streams, nothing to measure
  for other in (cached[1], streamed[0], streamed[1], never[0]):
    for a, b in zip(cached[0], other):
      assert set(a) == set(b)
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_evaluation_metrics_equal_cached_and_streamed(config, tmp_path,
                                                      caplog):
  """The evaluator of a run (what the train loop and --mode=evaluate use)
  with the default limit caches the validation split; with a 1-byte limit
  it streams it, re-read at every evaluation: the same metrics."""
  objective = objectives.resolve(config)
  run = loop.setup(config, tmp_path, read_only=False, objective=objective)
  run.manager.close()
  cached = run.evaluator.evaluate(run.state, "validation")[0]
  streaming = config.copy_and_resolve_references()
  streaming.eval_cache_max_bytes = 1
  evaluator = objective.make_evaluator(run.builder, streaming, run.mesh)
  with caplog.at_level(logging.INFO, logger="absl"):
    streamed = [evaluator.evaluate(run.state, "validation")[0]
                for _ in range(2)]
  assert "streamed at every evaluation" in caplog.text
  assert cached["num_examples"] == 1000
  assert cached == streamed[0] == streamed[1]


def test_in_memory_training_input_warns_when_the_split_exceeds_memory(
    config, monkeypatch):
  """The in-memory shuffle needs the whole decoded split: a warning naming
  the way out when it takes more than half the host's memory; streaming
  input caches nothing."""
  builder = datasets.get_builder(config.data)
  needed = memory.example_bytes(builder.as_dataset(split="train")) * (
      builder.info.splits["train"].num_examples)
  assert needed > 10 * MIB
  args = dict(modalities=config.modalities, pp=config.pp_train,
              global_batch_size=8, seed=0)
  monkeypatch.setattr(memory, "host_memory_bytes", lambda: 2 * needed)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    pipeline.train_batches(builder, "train", **args)  # exactly half: fits
  monkeypatch.setattr(memory, "host_memory_bytes", lambda: 2 * needed - 2)
  with pytest.warns(ResourceWarning, match=(
      rf"about {memory.format_bytes(needed)} of this host's .* set "
      r"config.input.shuffle_buffer_size > 0")):
    pipeline.train_batches(builder, "train", **args)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    pipeline.train_batches(builder, "train", shuffle_buffer_size=64, **args)


def test_example_bytes_from_the_spec_or_the_first_element():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  static = tf.data.Dataset.from_tensors(
      {"x": tf.zeros([4, 5], tf.float32), "y": tf.zeros([3], tf.int16)})
  assert memory.example_bytes(static) == 4 * 5 * 4 + 3 * 2
  # Unknown shapes and strings: measured on the first element.
  dynamic = tf.data.Dataset.from_generator(
      lambda: iter([(np.zeros((7, 2), np.float32), b"abc")] * 2),
      output_signature=(tf.TensorSpec([None, 2], tf.float32),
                        tf.TensorSpec([], tf.string)))
  assert memory.example_bytes(dynamic) == 7 * 2 * 4 + 3
  assert memory.example_bytes(dynamic.take(0)) == 0
  assert memory.format_bytes(512) == "512 B"
  assert memory.format_bytes(3 * MIB // 2) == "1.5 MiB"
  assert memory.format_bytes(4 * 2**30) == "4.0 GiB"
