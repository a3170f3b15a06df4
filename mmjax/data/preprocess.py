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


@OPS.register("pad_to")
def pad_to(height: int, width: int = None, mode: str = "center") -> Op:
  """Places `[h, w, c]` on a zero canvas `[height, width, c]` (h <= height,
  w <= width): centred (`mode="center"`, extra pixel below/right) or at an
  offset uniform over every placement (`"random"`), as a small digit sits in
  a Moving MNIST frame.

  Raises:
    ValueError: for another `mode` (when the op is built);
    tf.errors.InvalidArgumentError: for an image larger than the canvas.
  """
  if mode not in ("center", "random"):
    raise ValueError(f"pad_to mode must be 'center' or 'random', got {mode!r}")
  size = tf.constant([height, width or height], tf.int32)

  def op(x, seed):
    room = size - tf.shape(x)[:2]
    tf.debugging.assert_non_negative(
        room, message=f"pad_to({height}, {width or height}): image larger "
        "than the canvas")
    if mode == "center":
      offsets = room // 2
    else:
      offsets = tf.cast(tf.floor(tf.random.stateless_uniform([2], seed) *
                                 tf.cast(room + 1, tf.float32)), tf.int32)
    return tf.pad(x, tf.stack([tf.stack([offsets[0], room[0] - offsets[0]]),
                               tf.stack([offsets[1], room[1] - offsets[1]]),
                               tf.zeros([2], tf.int32)]))
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


@OPS.register("random_speed")
def random_speed(min_factor: float = 0.9, max_factor: float = 1.1) -> Op:
  """Speed perturbation: resamples a waveform to play a random factor faster.

  Ko, Peddinti, Povey & Khudanpur (2015), "Audio Augmentation for Speech
  Recognition", Interspeech. A factor `f` is drawn uniformly in
  `[min_factor, max_factor]` per example and the waveform is resampled by
  linear interpolation so that it plays `f` times faster at the same sample
  rate: `output[j] = x(j * f)` for `j < round(len(x) / f)`, where `x(t)`
  interpolates linearly between neighbouring samples and holds the last
  sample past the end. Unlike a tempo change this scales tempo and pitch
  (formants) together, which is what makes the speaker sound different. No
  low-pass filter is applied, so `f > 1` may alias content above
  `sample_rate / (2 f)`.

  The output length varies per example, so put this op before
  `pad_or_crop` in a spec, e.g. `"to_float|random_speed(0.9, 1.1)|
  pad_or_crop(8000)"`.

  Args:
    min_factor: smallest speed factor (0.9 = 10% slower and lower); > 0.
    max_factor: largest speed factor (1.1 = 10% faster and higher); >=
      `min_factor`. `min_factor == max_factor` gives a fixed factor.

  Returns:
    `fn(x, seed)` mapping a float waveform `[samples]` to a waveform of the
    same dtype and `[round(samples / f)]` samples (at least one sample for a
    non-empty input).

  Raises:
    ValueError: if a factor is not a finite positive number or
      `min_factor > max_factor`.
  """
  for name, value in (("min_factor", min_factor), ("max_factor", max_factor)):
    if not 0 < value < float("inf"):  # Also rejects NaN.
      raise ValueError(
          f"random_speed {name} must be a finite number > 0, got {value!r}")
  if min_factor > max_factor:
    raise ValueError(f"random_speed min_factor ({min_factor}) must be <= "
                     f"max_factor ({max_factor})")

  def op(x, seed):
    # float64 so that positions j * f stay exact for long recordings.
    factor = tf.random.stateless_uniform(
        [], seed, min_factor, max_factor, dtype=tf.float64)
    n = tf.shape(x, out_type=tf.int64)[0]
    out_len = tf.cast(tf.round(tf.cast(n, tf.float64) / factor), tf.int64)
    out_len = tf.maximum(out_len, tf.minimum(n, 1))
    positions = tf.range(out_len, dtype=tf.float64) * factor
    lo = tf.floor(positions)
    weight = tf.cast(positions - lo, x.dtype)
    last = tf.maximum(n - 1, 0)
    lo = tf.clip_by_value(tf.cast(lo, tf.int64), 0, last)
    hi = tf.minimum(lo + 1, last)
    x_lo, x_hi = tf.gather(x, lo), tf.gather(x, hi)
    return x_lo + weight * (x_hi - x_lo)
  return op


@OPS.register("random_noise")
def random_noise(min_snr_db: float, max_snr_db: float) -> Op:
  """Adds white Gaussian noise at a random signal-to-noise ratio.

  An SNR is drawn uniformly in `[min_snr_db, max_snr_db]` dB per example and
  i.i.d. Gaussian noise is added with variance `mean(x ** 2) /
  10 ** (snr / 10)`, i.e. relative to the example's own mean-square power, so
  a silent (all-zero) input stays silent.

  Args:
    min_snr_db: lowest SNR in dB (lower = noisier; may be negative).
    max_snr_db: highest SNR in dB; >= `min_snr_db`.

  Returns:
    `fn(x, seed)` mapping a float waveform `[samples]` to a noisy waveform of
    the same shape and dtype.

  Raises:
    ValueError: if `min_snr_db > max_snr_db` or either is not finite.
  """
  for name, value in (("min_snr_db", min_snr_db), ("max_snr_db", max_snr_db)):
    if not -float("inf") < value < float("inf"):  # Also rejects NaN.
      raise ValueError(f"random_noise {name} must be finite, got {value!r}")
  if min_snr_db > max_snr_db:
    raise ValueError(f"random_noise min_snr_db ({min_snr_db}) must be <= "
                     f"max_snr_db ({max_snr_db})")

  def op(x, seed):
    snr_seed, noise_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    snr_db = tf.random.stateless_uniform(
        [], snr_seed, min_snr_db, max_snr_db, dtype=x.dtype)
    power = tf.reduce_mean(tf.square(x))
    std = tf.sqrt(power) * tf.pow(tf.constant(10.0, x.dtype), -snr_db / 20.0)
    noise = tf.random.stateless_normal(tf.shape(x), noise_seed, dtype=x.dtype)
    return x + std * noise
  return op


from mmjax.data import pretrained_ops  # noqa: E402,F401  (registers its ops)
from mmjax.data import video_ops  # noqa: E402,F401  (registers its ops)
