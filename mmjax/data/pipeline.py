"""The tf.data input pipeline: read -> shuffle (in memory, or streaming through a
bounded buffer) -> this process's examples -> preprocess -> batch.

Batches leave the pipeline as numpy arrays of the process-local batch
(`global batch size / process count`) and are assembled into global
`jax.Array`s sharded over the mesh by `mmjax.parallel.to_global`.

Training order is a pure function of (seed, step), whatever the number of
processes: every process shuffles the whole split alike, and the global
batch of step `s` is the examples at positions `s * global_batch ...
(s + 1) * global_batch - 1` of that endless order, process `p` taking the
`p`-th contiguous block of `local_batch` of them (the rows of the global
batch its devices hold). Augmentation randomness is keyed by the seed and
that position. So 1 process and N processes train on the same batches, and
resuming at step `s` (skipping `s * global_batch` positions) sees the same
batches as an uninterrupted run.

Evaluation (`eval_batches`) caches a split's preprocessed batches in host
memory when they fit a budget (`config.eval_cache_max_bytes`, default
`memory.EVAL_CACHE_MAX_BYTES`) and streams larger splits, read and
preprocessed again at every evaluation; the batches are the same either way.

A dataset whose examples may lack a modality has a feature `present`
(`{modality: bool}`, e.g. `multimodal_manifest` of a manifest with empty
cells); its batches then carry `present` (`{modality: float32 [batch]}`, 1.0
where the example has the modality, for each modality of the dataset), of
which the run's modalities are the presence mask the model takes
(`MultimodalModel.__call__(inputs, present)`, see `mmjax.train.steps`), and
training leaves out the examples that have none of the run's modalities.
Datasets without it give no `present`: every modality is there.

A pp spec may name files prepared with the dataset through `{dataset_dir}`,
which `train_batches` / `eval_batches` replace by the builder's `data_dir`
(see `resolve_dataset_dir`), e.g. `tokenize(tokenizer="{dataset_dir}/
tokenizer", max_length=16)` for the tokenizer `emoji_image_text` prepares.
"""

import math
import os
import warnings
from typing import Dict, Iterator, Mapping, Sequence, Tuple

from absl import logging
import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mmjax.data import memory
from mmjax.data.pp import builder as pp_builder

try:  # JAX owns the accelerators; tf.data runs on the host CPU only.
  tf.config.set_visible_devices([], "GPU")
except (RuntimeError, ValueError):
  pass

Batch = Dict[str, np.ndarray]


def _options() -> tf.data.Options:
  """Deterministic order; a thread pool of one thread per usable core."""
  options = tf.data.Options()
  options.deterministic = True
  options.threading.private_threadpool_size = len(os.sched_getaffinity(0))
  return options


def _read(builder: tfds.core.DatasetBuilder, split) -> tf.data.Dataset:
  """`split` (a name or a `tfds` sub-split), decoded, in file order."""
  return builder.as_dataset(split=split, shuffle_files=False,
                            read_config=tfds.ReadConfig(options=_options()))


def _process_split(builder: tfds.core.DatasetBuilder,
                   split: str) -> Tuple[tf.data.Dataset, int]:
  """This process's contiguous share of `split` (as `tfds.even_splits`
  without dropping: the first `total % process_count` processes get one
  example more), and the position in `split` of its first example."""
  count, index = jax.process_count(), jax.process_index()
  total = builder.info.splits[split].num_examples
  offset = index * (total // count) + min(index, total % count)
  shard = tfds.split_for_jax_process(split, drop_remainder=False)
  return _read(builder, shard), offset


DATASET_DIR = "{dataset_dir}"


def resolve_dataset_dir(spec: str, builder: tfds.core.DatasetBuilder) -> str:
  """`spec` with each `{dataset_dir}` replaced by `builder.data_dir`.

  A plain text replacement (not `str.format`), so other braces of a spec,
  such as a dict literal argument, are left alone; write `{dataset_dir}`
  inside an op's string argument.

  Raises:
    ValueError: if the spec uses `{dataset_dir}` and the directory's path
      holds a character that would break the spec (`|`, a quote or `\\`).
  """
  if DATASET_DIR not in spec:
    return spec
  data_dir = os.fspath(builder.data_dir)
  if any(c in data_dir for c in "|'\"\\"):
    raise ValueError(f"cannot put the dataset directory {data_dir!r} into "
                     f"the pp spec {spec!r}: its path holds | ' \" or \\")
  return spec.replace(DATASET_DIR, data_dir)


# The feature (`{modality: bool}`) and batch key (`{modality: float32
# [batch]}`) of which modalities an example has.
PRESENT = "present"


def _has_any(modalities: Sequence[str]):
  """`example -> bool`: its `present` flags have one of `modalities`."""
  def fn(example):
    return tf.reduce_any(tf.stack([example[PRESENT][m] for m in modalities]))
  return fn


# The pp key of the ops that see the whole example (all its features) before
# the per-modality ops, e.g. `sample_clip`, which cuts the same time window
# from a video and its soundtrack (`mmjax.data.pp.video`).
EXAMPLE_PP_KEY = "example"


def _preprocess_fn(modalities: Sequence[str], pp: Mapping[str, str], seed: int):
  """`(position, example) -> {modality: tensor, label: int32}` with pp ops:
  `pp["example"]` on the whole example first (if given), then `pp[m]` on
  each modality m; plus `present: {modality: float32}` (every modality the
  feature flags, not only `modalities`: evaluation counts the examples of
  each combination) when the example has a `present` feature."""
  ops = {m: pp_builder.parse(pp.get(m, "")) for m in modalities}
  example_ops = pp_builder.parse(pp.get(EXAMPLE_PP_KEY, ""))

  def fn(position, example):
    # `position` is global (the same for any process count); the key's second
    # word, once the process index, stays 0 so that single-process runs keep
    # their augmentation.
    example_seed = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, 0], tf.int64), position)
    example = example_ops(example, tf.random.experimental.stateless_fold_in(
        example_seed, len(modalities)))
    out = {m: ops[m](example[m], tf.random.experimental.stateless_fold_in(
        example_seed, i)) for i, m in enumerate(modalities)}
    out["label"] = tf.cast(example["label"], tf.int32)
    if PRESENT in example:
      out[PRESENT] = {m: tf.cast(flag, tf.float32)
                      for m, flag in example[PRESENT].items()}
    return out
  return fn


def _streaming_read(builder: tfds.core.DatasetBuilder, split: str, seed: int,
                    cycle_length: int) -> tf.data.Dataset:
  """`split` without a cache, its files in a new seeded order each epoch,
  `cycle_length` files read at once (interleaved), decoded."""
  options = _options()
  # The pp ops' `tf.py_function`s (tokenizers) are pure functions of their
  # input; without this, tf.data refuses to checkpoint an iterator over them.
  options.experimental_external_state_policy = (
      tf.data.experimental.ExternalStatePolicy.IGNORE)
  # Keeps `skip(0)` in the graph: the graph of a run resumed by skipping and
  # of one restored from its saved iterator must be the same.
  options.experimental_optimization.noop_elimination = False
  read_config = tfds.ReadConfig(
      options=options, shuffle_seed=seed, shuffle_reshuffle_each_iteration=True,
      interleave_cycle_length=cycle_length, interleave_block_length=1)
  return builder.as_dataset(split=split, shuffle_files=True,
                            read_config=read_config)


def _warn_if_too_large_for_memory(ds: tf.data.Dataset, num_examples: int):
  """Warns when the in-memory shuffle's cache of `ds` (the whole decoded
  split) would take more than half the host's memory."""
  needed = memory.example_bytes(ds) * num_examples
  if needed > memory.host_memory_bytes() // 2:
    warnings.warn(
        f"input.shuffle_buffer_size=0 caches the whole decoded training "
        f"split in host memory: about {memory.format_bytes(needed)} of this "
        f"host's {memory.format_bytes(memory.host_memory_bytes())}; set "
        f"config.input.shuffle_buffer_size > 0 to stream it", ResourceWarning,
        stacklevel=3)


class TrainBatches:
  """Endless shuffled training batches of this process (numpy), from
  `train_batches`; an iterator whose position can be saved and restored
  (`checkpointable`, streaming input only) through its tf.data iterator.

  Attributes:
    iterator: the `tf.data.Iterator` (checkpoint it with
      `tf.train.Checkpoint(iterator=...)`, or `mmjax.data.input_checkpoint`).
    checkpointable: whether saving `iterator` is cheap: True for streaming
      input (its state is the shuffle buffer and file offsets), False for the
      in-memory cache (its state would hold the whole split).
  """

  def __init__(self, dataset: tf.data.Dataset, checkpointable: bool):
    self.iterator = iter(dataset)
    self.checkpointable = checkpointable

  def __iter__(self):
    return self

  def __next__(self) -> Batch:
    return jax.tree.map(np.asarray, next(self.iterator))


def train_batches(builder: tfds.core.DatasetBuilder, split: str, *,
                  modalities: Sequence[str], pp: Mapping[str, str],
                  global_batch_size: int, seed: int, start_step: int = 0,
                  shuffle_buffer_size: int = 0,
                  cycle_length: int = 16) -> TrainBatches:
  """Endless shuffled training batches of this process.

  Two ways to shuffle (`shuffle_buffer_size`):
  - 0, in memory: every process reads and caches the whole split and
    shuffles all of it with `seed` (a new order each epoch). For datasets
    that fit in host memory; an exact uniform shuffle. Warns
    (`ResourceWarning`) when the decoded split would take more than half
    the host's memory (`memory.example_bytes` x examples).
  - > 0, streaming: nothing cached. The split's files are read in a new
    seeded order each epoch, `cycle_length` at a time (interleaved), through
    a shuffle buffer of `shuffle_buffer_size` examples (the host memory it
    needs). The order is shuffled to the extent the files and the buffer
    allow, the standard trade-off for data larger than memory.

  Either way every process reads the same stream, numbers it, skips the
  `start_step * global_batch_size` positions already trained on, and keeps
  its own block of each global batch before preprocessing it: process `p` of
  `P` takes positions `s * G + p * L ... s * G + (p + 1) * L - 1` of step `s`
  (`G` the global, `L = G / P` the local batch size). The global batch of a
  step, its example order and its augmentation (keyed by `seed` and the
  position) are therefore the same for any number of processes, and a run
  resumed at `start_step` yields the batches an uninterrupted run yields
  from there. Streaming input resumes in constant time instead by restoring
  the iterator (`TrainBatches.checkpointable`; build it with
  `start_step=0` for that).

  Args:
    builder: a prepared TFDS builder whose examples have the `modalities` and
      `label` features.
    split: TFDS split name, e.g. "train".
    modalities: feature names to keep, e.g. ("image", "audio").
    pp: `{modality: pp spec}` (see `mmjax.data.pp.builder.parse`), and
      optionally `{"example": spec}` of ops on the whole example, run first;
      `{dataset_dir}` in a spec becomes `builder.data_dir`.
    global_batch_size: examples per step over all processes.
    seed: shuffling and augmentation seed.
    start_step: steps already trained (on resume without a saved iterator).
    shuffle_buffer_size: 0 for the in-memory shuffle, else the streaming
      shuffle buffer's size in examples.
    cycle_length: streaming: files read at once.

  Returns:
    A `TrainBatches` iterator of `{modality: [local_batch, ...], "label":
    int32 [local_batch]}` (and `"present": {modality: float32
    [local_batch]}` when the dataset has a `present` feature).

  Raises:
    ValueError: if `global_batch_size` is not divisible by the process
      count, or `shuffle_buffer_size` is negative.
  """
  count, index = jax.process_count(), jax.process_index()
  if global_batch_size % count:
    raise ValueError(f"the global batch size {global_batch_size} must be "
                     f"divisible by the number of processes, {count}")
  if shuffle_buffer_size < 0:
    raise ValueError(f"shuffle_buffer_size must be >= 0 (0: the whole split "
                     f"in memory), got {shuffle_buffer_size}")
  local_batch = global_batch_size // count
  if shuffle_buffer_size == 0:
    ds = _read(builder, split)
    _warn_if_too_large_for_memory(ds, builder.info.splits[split].num_examples)
    ds = ds.cache()
    ds = ds.shuffle(int(ds.cardinality()), seed=seed,
                    reshuffle_each_iteration=True).repeat()
  else:
    ds = _streaming_read(builder, split, seed, cycle_length).repeat()
    ds = ds.shuffle(shuffle_buffer_size, seed=seed,
                    reshuffle_each_iteration=True)
  if PRESENT in builder.info.features:
    # Examples with none of the modalities teach nothing (after the
    # shuffle, which needs the split's size; only here, so that the graph of
    # a saved iterator of another dataset stays the same).
    ds = ds.filter(_has_any(modalities))
  # Always in the graph, even skipping 0 (a restored iterator needs the
  # graph it was saved from; see `_streaming_read`'s options); skips
  # nothing on a restored iterator.
  ds = ds.enumerate().skip(start_step * global_batch_size)
  if count > 1:  # this process's block of each global batch
    ds = ds.filter(lambda position, _: position // local_batch % count == index)
  pp = {m: resolve_dataset_dir(spec, builder) for m, spec in pp.items()}
  ds = ds.map(_preprocess_fn(modalities, pp, seed),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local_batch, drop_remainder=True).prefetch(2)
  return TrainBatches(ds, checkpointable=shuffle_buffer_size > 0)


def eval_batches(builder: tfds.core.DatasetBuilder, split: str, *,
                 modalities: Sequence[str], pp: Mapping[str, str],
                 global_batch_size: int,
                 cache_max_bytes: int = memory.EVAL_CACHE_MAX_BYTES
                 ) -> Tuple[tf.data.Dataset, int]:
  """Every example of `split` exactly once, padded to whole batches.

  Each process reads a contiguous share of the split (`_process_split`);
  all processes yield the same number of batches (multi-host steps must
  match); padding examples have `mask == 0` and must be ignored by metrics.
  Random pp ops get seed 0 and the example's position in the split, so an
  example is preprocessed alike for any number of processes.

  The preprocessed batches are cached in host memory by their first full
  pass when this process's share of them (batches x local batch x bytes per
  preprocessed example, `memory.example_bytes`) takes at most
  `cache_max_bytes`; otherwise every pass reads and preprocesses the split
  again (streaming: memory bounded by the prefetched batches). Both yield
  the same batches in the same order. The choice is logged.

  Args:
    builder, split, modalities, pp: as in `train_batches`.
    global_batch_size: examples per batch over all processes.
    cache_max_bytes: the most bytes of this process's preprocessed batches
      to cache (0: always stream).

  Returns:
    (dataset of `{modality: ..., "label": int32, "mask": float32}` local
    batches (and `present` as in `train_batches`; padding examples have
    none of the modalities), number of batches).
  """
  local_batch = global_batch_size // jax.process_count()
  total = builder.info.splits[split].num_examples
  num_batches = math.ceil(math.ceil(total / jax.process_count()) / local_batch)
  pp = {m: resolve_dataset_dir(spec, builder) for m, spec in pp.items()}
  fn = _preprocess_fn(modalities, pp, seed=0)
  ds, offset = _process_split(builder, split)
  ds = ds.enumerate(start=offset).map(fn)
  ds = ds.map(lambda ex: {**ex, "mask": tf.constant(1.0)})
  cache = False
  if cache_max_bytes > 0:
    needed = num_batches * local_batch * memory.example_bytes(ds)
    cache = needed <= cache_max_bytes
    logging.info("Evaluation split %r: %s of preprocessed batches per "
                 "process, %s (limit %s).", split, memory.format_bytes(needed),
                 "cached" if cache else "streamed at every evaluation",
                 memory.format_bytes(cache_max_bytes))
  padding = ds.take(1).map(
      lambda ex: tf.nest.map_structure(tf.zeros_like, ex)).repeat()
  ds = ds.concatenate(padding).take(num_batches * local_batch)
  ds = ds.batch(local_batch, drop_remainder=True)
  if cache:
    ds = ds.cache()
  return ds.prefetch(2), num_batches
