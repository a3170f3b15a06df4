"""The tf.data input pipeline: per-process shard -> shuffle -> preprocess -> batch.

Batches leave the pipeline as numpy arrays of the process-local batch
(`global batch size / process count`) and are assembled into global
`jax.Array`s sharded over the mesh by `mmjax.parallel.to_global`.

Training order is a pure function of (seed, process index, step): resuming at
step `s` skips exactly the `s * local_batch` examples already consumed, so a
resumed run sees the same batches as an uninterrupted one.

A pp spec may name files prepared with the dataset through `{dataset_dir}`,
which `train_batches` / `eval_batches` replace by the builder's `data_dir`
(see `resolve_dataset_dir`), e.g. `tokenize(tokenizer="{dataset_dir}/
tokenizer", max_length=16)` for the tokenizer `emoji_image_text` prepares.
"""

import math
import os
from typing import Dict, Iterator, Mapping, Sequence, Tuple

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mmjax.data import preprocess

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


def _process_split(builder: tfds.core.DatasetBuilder, split: str,
                   drop_remainder: bool) -> tf.data.Dataset:
  """This process's even share of `split`, decoded, in file order."""
  shard = tfds.split_for_jax_process(split, drop_remainder=drop_remainder)
  return builder.as_dataset(split=shard, shuffle_files=False,
                            read_config=tfds.ReadConfig(options=_options()))


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


# The pp key of the ops that see the whole example (all its features) before
# the per-modality ops, e.g. `sample_clip`, which cuts the same time window
# from a video and its soundtrack (`mmjax.data.video_ops`).
EXAMPLE_PP_KEY = "example"


def _preprocess_fn(modalities: Sequence[str], pp: Mapping[str, str], seed: int):
  """`(position, example) -> {modality: tensor, label: int32}` with pp ops:
  `pp["example"]` on the whole example first (if given), then `pp[m]` on
  each modality m."""
  ops = {m: preprocess.parse(pp.get(m, "")) for m in modalities}
  example_ops = preprocess.parse(pp.get(EXAMPLE_PP_KEY, ""))

  def fn(position, example):
    example_seed = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, jax.process_index()], tf.int64), position)
    example = example_ops(example, tf.random.experimental.stateless_fold_in(
        example_seed, len(modalities)))
    out = {m: ops[m](example[m], tf.random.experimental.stateless_fold_in(
        example_seed, i)) for i, m in enumerate(modalities)}
    out["label"] = tf.cast(example["label"], tf.int32)
    return out
  return fn


def train_batches(builder: tfds.core.DatasetBuilder, split: str, *,
                  modalities: Sequence[str], pp: Mapping[str, str],
                  global_batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[Batch]:
  """Endless shuffled training batches of this process.

  Args:
    builder: a prepared TFDS builder whose examples have the `modalities` and
      `label` features.
    split: TFDS split name, e.g. "train".
    modalities: feature names to keep, e.g. ("image", "audio").
    pp: `{modality: pp spec}` (see `mmjax.data.preprocess.parse`), and
      optionally `{"example": spec}` of ops on the whole example, run first;
      `{dataset_dir}` in a spec becomes `builder.data_dir`.
    global_batch_size: examples per step over all processes.
    seed: shuffling and augmentation seed.
    start_step: steps already trained (on resume).

  Yields:
    `{modality: [local_batch, ...], "label": int32 [local_batch]}`.
  """
  local_batch = global_batch_size // jax.process_count()
  ds = _process_split(builder, split, drop_remainder=True).cache()
  num_examples = int(ds.cardinality())
  ds = ds.shuffle(num_examples, seed=seed + jax.process_index(),
                  reshuffle_each_iteration=True).repeat()
  ds = ds.enumerate().skip(start_step * local_batch)
  pp = {m: resolve_dataset_dir(spec, builder) for m, spec in pp.items()}
  ds = ds.map(_preprocess_fn(modalities, pp, seed),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local_batch, drop_remainder=True).prefetch(2)
  return ds.as_numpy_iterator()


def eval_batches(builder: tfds.core.DatasetBuilder, split: str, *,
                 modalities: Sequence[str], pp: Mapping[str, str],
                 global_batch_size: int) -> Tuple[tf.data.Dataset, int]:
  """Every example of `split` exactly once, padded to whole batches.

  All processes yield the same number of batches (multi-host steps must
  match); padding examples have `mask == 0` and must be ignored by metrics.

  Returns:
    (dataset of `{modality: ..., "label": int32, "mask": float32}` local
    batches, number of batches).
  """
  local_batch = global_batch_size // jax.process_count()
  total = builder.info.splits[split].num_examples
  num_batches = math.ceil(math.ceil(total / jax.process_count()) / local_batch)
  pp = {m: resolve_dataset_dir(spec, builder) for m, spec in pp.items()}
  fn = _preprocess_fn(modalities, pp, seed=0)
  ds = _process_split(builder, split, drop_remainder=False).enumerate().map(fn)
  ds = ds.map(lambda ex: {**ex, "mask": tf.constant(1.0)})
  padding = ds.take(1).map(
      lambda ex: tf.nest.map_structure(tf.zeros_like, ex)).repeat()
  ds = ds.concatenate(padding).take(num_batches * local_batch)
  ds = ds.batch(local_batch, drop_remainder=True).cache().prefetch(2)
  return ds, num_batches
