"""Preprocessing ops: small registered TensorFlow functions composed from strings.

In the spirit of big_vision's `pp` ops. A spec such as
`"to_float|pad_or_crop(8000)"` is parsed into a chain of ops; each op is a
factory registered by name whose arguments are Python literals and which
returns `fn(x, seed) -> x`, where `x` is one example's tensor of one modality
and `seed` is an int64 `[2]` stateless-random seed unique to that example, so
augmentation is reproducible and independent of how the input is sharded.

Ops run inside tf.data on the host, per example, before batching.
"""

import ast
from typing import Any, Callable, List, Tuple

import tensorflow as tf

from mmjax.registry import Registry

Op = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
OPS = Registry("preprocessing op")


def _parse_call(text: str) -> Tuple[str, tuple, dict]:
  """Parses `name` or `name(literal args, key=literal)` into its parts."""
  try:
    node = ast.parse(text.strip(), mode="eval").body
  except SyntaxError as e:
    raise ValueError(f"cannot parse preprocessing op {text!r}: {e.msg}") from e
  if isinstance(node, ast.Name):
    return node.id, (), {}
  if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
    raise ValueError(
        f"preprocessing op {text!r} must look like `name` or `name(args)`")
  try:
    args = tuple(ast.literal_eval(a) for a in node.args)
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
  except ValueError as e:
    raise ValueError(
        f"arguments of preprocessing op {text!r} must be Python literals") from e
  return node.func.id, args, kwargs


def parse(spec: str) -> Op:
  """Builds the op chain described by `spec` (ops separated by `|`).

  Args:
    spec: e.g. `"value_range(0, 1)"` or `"to_float|pad_or_crop(8000)"`; an
      empty string is the identity.

  Returns:
    `fn(x, seed) -> x` applying the ops left to right.

  Raises:
    ValueError: for an unparsable op or wrong arguments, naming the op and
      listing the known ops for an unknown name.
  """
  ops: List[Op] = []
  for part in filter(None, (p.strip() for p in spec.split("|"))):
    name, args, kwargs = _parse_call(part)
    if name not in OPS:
      raise ValueError(
          f"unknown preprocessing op {name!r} in {spec!r}; known: {OPS.names()}")
    try:
      ops.append(OPS.get(name)(*args, **kwargs))
    except TypeError as e:
      raise ValueError(f"bad arguments for preprocessing op {part!r}: {e}") from e

  def apply(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    for i, op in enumerate(ops):
      x = op(x, tf.random.experimental.stateless_fold_in(seed, i))
    return x
  return apply


def _deterministic(fn: Callable[[tf.Tensor], tf.Tensor]) -> Op:
  return lambda x, seed: fn(x)


# Image ops: `x` is `[height, width, channels]`.


@OPS.register("value_range")
def value_range(vmin: float = -1.0, vmax: float = 1.0,
                in_min: float = 0.0, in_max: float = 255.0) -> Op:
  """Linearly maps values from `[in_min, in_max]` to `[vmin, vmax]`, float32."""
  scale = (vmax - vmin) / (in_max - in_min)
  return _deterministic(
      lambda x: (tf.cast(x, tf.float32) - in_min) * scale + vmin)


@OPS.register("normalize")
def normalize(mean: Any, std: Any) -> Op:
  """`(x - mean) / std` per channel, float32 (mean/std scalars or per-channel)."""
  mean_t = tf.constant(mean, tf.float32)
  std_t = tf.constant(std, tf.float32)
  return _deterministic(lambda x: (tf.cast(x, tf.float32) - mean_t) / std_t)


@OPS.register("resize")
def resize(height: int, width: int = None, method: str = "bilinear") -> Op:
  """Resizes `[h, w, c]` to `[height, width, c]` (float32) with tf.image.resize."""
  size = (height, width or height)
  return _deterministic(lambda x: tf.image.resize(x, size, method=method))


@OPS.register("random_translate")
def random_translate(max_pixels: int) -> Op:
  """Shifts the image by up to `max_pixels` in each direction, zero-filled."""
  def op(x, seed):
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    padded = tf.pad(x, [[max_pixels, max_pixels], [max_pixels, max_pixels],
                        [0, 0]])
    offsets = tf.random.stateless_uniform(
        [2], seed, minval=0, maxval=2 * max_pixels + 1, dtype=tf.int32)
    return tf.slice(padded, [offsets[0], offsets[1], 0], [h, w, -1])
  return op


# Audio ops: `x` is a waveform `[samples]`.


@OPS.register("to_float")
def to_float(full_scale: float = 32768.0) -> Op:
  """int16 PCM -> float32 in [-1, 1): divides by `full_scale` (2**15)."""
  return _deterministic(lambda x: tf.cast(x, tf.float32) / full_scale)


@OPS.register("pad_or_crop")
def pad_or_crop(length: int, mode: str = "start") -> Op:
  """Zero-pads at the end or crops a waveform to exactly `length` samples.

  Args:
    length: output length in samples (8000 = 1 s at 8 kHz).
    mode: where a longer recording is cropped: "start" keeps the first
      `length` samples, "center" the middle, "random" a random window
      (training augmentation).

  Raises:
    ValueError: for an unknown mode.
  """
  if mode not in ("start", "center", "random"):
    raise ValueError(f"pad_or_crop mode must be start|center|random, got {mode!r}")

  def op(x, seed):
    excess = tf.maximum(tf.shape(x)[0] - length, 0)
    if mode == "start":
      offset = 0
    elif mode == "center":
      offset = excess // 2
    else:
      offset = tf.random.stateless_uniform(
          [], seed, minval=0, maxval=excess + 1, dtype=tf.int32)
    x = x[offset:offset + length]
    x = tf.pad(x, [[0, length - tf.shape(x)[0]]])
    return tf.ensure_shape(x, [length])
  return op


@OPS.register("random_gain")
def random_gain(max_db: float) -> Op:
  """Scales a float waveform by a gain drawn uniformly in [-max_db, max_db] dB."""
  def op(x, seed):
    db = tf.random.stateless_uniform([], seed, -max_db, max_db)
    return x * tf.pow(10.0, db / 20.0)
  return op
