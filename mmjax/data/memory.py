"""The host memory a tf.data split takes when cached, for deciding whether to
cache it or stream it (`mmjax.data.pipeline`)."""

import os

import numpy as np
import tensorflow as tf

# `config.eval_cache_max_bytes`' default: an evaluation split whose padded,
# preprocessed batches of one process take at most this many bytes is cached
# in host memory after its first pass; a larger one streams.
EVAL_CACHE_MAX_BYTES = 4 * 2**30


def _spec_bytes(spec: tf.TensorSpec):
  """Bytes of a tensor of `spec`, or None when its shape is not static or its
  dtype has no fixed size (strings)."""
  if not spec.shape.is_fully_defined() or spec.dtype == tf.string:
    return None
  return int(np.prod(spec.shape, dtype=np.int64)) * spec.dtype.size


def _tensor_bytes(tensor: tf.Tensor) -> int:
  if tensor.dtype == tf.string:
    return int(sum(len(s) for s in np.asarray(tensor.numpy()).ravel()))
  return int(tf.size(tensor, out_type=tf.int64)) * tensor.dtype.size


def example_bytes(ds: tf.data.Dataset) -> int:
  """Bytes of one element of `ds` in host memory (every tensor of it).

  From `ds.element_spec` when every shape is static and no tensor is a
  string (nothing is read); otherwise measured on the first element (one
  element read and preprocessed), which assumes the elements are alike
  (as batching needs them to be). 0 for an empty dataset.
  """
  sizes = [_spec_bytes(s) for s in tf.nest.flatten(ds.element_spec)]
  if None not in sizes:
    return sum(sizes)
  for element in ds.take(1):
    return sum(_tensor_bytes(t) for t in tf.nest.flatten(element))
  return 0


def host_memory_bytes() -> int:
  """The host's physical memory in bytes (`sysconf`)."""
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def format_bytes(n: float) -> str:
  """e.g. "1.5 GiB"."""
  if n < 1024:
    return f"{n:.0f} B"
  for unit in ("KiB", "MiB"):
    n /= 1024
    if n < 1024:
      return f"{n:.1f} {unit}"
  return f"{n / 1024:.1f} GiB"
