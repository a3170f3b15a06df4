"""Audio pp ops: `x` is one waveform `[samples]`. See `registry` for the op
contract."""

import tensorflow as tf

from mmjax.data.pp.registry import deterministic
from mmjax.data.pp.registry import Op
from mmjax.data.pp.registry import OPS


@OPS.register("to_float")
def to_float(full_scale: float = 32768.0) -> Op:
  """int16 PCM -> float32 in [-1, 1): divides by `full_scale` (2**15)."""
  return deterministic(lambda x: tf.cast(x, tf.float32) / full_scale)


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
