"""Graded audio and image corruptions for robustness sweeps, on device in JAX.

All functions are pure, take a `jax.random` key and run under `jax.jit`; the
level (SNR, noise std, occluded fraction) may be a Python float (static) or a
traced scalar. `CORRUPTIONS` lists the sweeps used with MultiBench-style
robustness metrics (see `robustness_metrics`): each sweep starts at the clean
level (`Corruption.clean_level`: +inf dB for SNR levels, 0 otherwise) and then
goes through `Corruption.levels`, from mild to severe.
"""

import dataclasses
from typing import Callable, Tuple

import jax
import jax.numpy as jnp


def _check_rank(x: jax.Array, rank: int, layout: str, name: str):
  if x.ndim != rank:
    raise ValueError(f"{name} expects {layout}, got shape {tuple(x.shape)}")


def _scale_to_snr(signal: jax.Array, noise: jax.Array,
                  snr_db: float) -> jax.Array:
  """`signal` plus `noise` rescaled per example to the exact SNR in dB.

  Powers are mean squares over the samples of the given arrays, so the SNR of
  the output holds exactly (up to rounding), not only in expectation. A silent
  example or an all-zero noise row gets no noise (no NaN); snr_db = +inf
  returns `signal`.
  """
  # Powers in at least float32: squares of bfloat16 audio lose the SNR.
  dtype = jnp.promote_types(signal.dtype, jnp.float32)
  p_signal = jnp.mean(jnp.square(signal.astype(dtype)), axis=-1,
                      keepdims=True)
  p_noise = jnp.mean(jnp.square(noise.astype(dtype)), axis=-1, keepdims=True)
  ratio = jnp.power(10.0, jnp.asarray(snr_db, dtype) / 10.0)
  scale = jnp.sqrt(p_signal / (ratio * jnp.where(p_noise > 0, p_noise, 1.0)))
  scale = jnp.where(p_noise > 0, scale, 0.0)
  return signal + (scale * noise).astype(signal.dtype)


def add_white_noise(rng: jax.Array, waveform: jax.Array,
                    snr_db: float) -> jax.Array:
  """Adds Gaussian white noise at a given signal-to-noise ratio per example.

  The noise of each example is drawn from N(0, 1) and scaled so that
  10 log10(P_signal / P_noise) = snr_db exactly, P being the mean square over
  the samples of the example and of its drawn noise. An all-zero example stays
  zero; snr_db = +inf is the identity.

  Args:
    rng: PRNG key.
    waveform: float `[batch, samples]`.
    snr_db: target SNR in dB (e.g. 20 mild, -5 severe).

  Returns:
    The noisy waveform, same shape and dtype.

  Raises:
    ValueError: if `waveform` is not rank 2.
  """
  _check_rank(waveform, 2, "[batch, samples]", "add_white_noise")
  noise = jax.random.normal(rng, waveform.shape, waveform.dtype)
  return _scale_to_snr(waveform, noise, snr_db)


def add_babble_noise(rng: jax.Array, waveform: jax.Array, snr_db: float,
                     num_speakers: int = 3) -> jax.Array:
  """Adds babble made of other recordings of the batch at a given SNR.

  Babble is the sum of min(num_speakers, batch - 1) distinct *other* examples
  of the batch (e.g. other FSDD clips), chosen at random and independently for
  each example and never the example itself; it is scaled per example so that
  10 log10(P_signal / P_babble) = snr_db exactly (P: mean square over the
  samples). So the noise is real speech with the same recording conditions as
  the signal, a harder and more realistic corruption than white noise. An
  all-zero example, or one whose talkers are all silent, gets no noise;
  snr_db = +inf is the identity.

  Args:
    rng: PRNG key.
    waveform: float `[batch, samples]`, batch >= 2: with batch 1 there are no
      other recordings to draw the talkers from.
    snr_db: target SNR in dB.
    num_speakers: talkers per example, >= 1 (static); capped at batch - 1.

  Returns:
    The noisy waveform, same shape and dtype.

  Raises:
    ValueError: if `waveform` is not rank 2, batch < 2 or num_speakers < 1.
  """
  _check_rank(waveform, 2, "[batch, samples]", "add_babble_noise")
  batch = waveform.shape[0]
  if batch < 2:
    raise ValueError(f"add_babble_noise draws the talkers from the other "
                     f"examples of the batch and needs batch >= 2, got "
                     f"{batch}")
  if num_speakers < 1:
    raise ValueError(f"num_speakers must be >= 1, got {num_speakers}")
  # Each row ranks the other examples in a random order; self ranks last.
  keys = jax.random.uniform(rng, (batch, batch))
  keys = jnp.where(jnp.eye(batch, dtype=bool), jnp.inf, keys)
  talkers = jnp.argsort(keys, axis=1)[:, :min(num_speakers, batch - 1)]
  babble = waveform[talkers].sum(axis=1)
  return _scale_to_snr(waveform, babble, snr_db)


def add_gaussian_noise(rng: jax.Array, images: jax.Array,
                       std: float) -> jax.Array:
  """Adds pixel-wise Gaussian noise N(0, std^2), then clips to [0, 1].

  Args:
    rng: PRNG key.
    images: float `[batch, height, width, channels]` with values in [0, 1].
    std: noise standard deviation in pixel units, >= 0; 0 is the identity
      for images already in [0, 1].

  Returns:
    The noisy images in [0, 1], same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `std` is negative.
  """
  _check_rank(images, 4, "[batch, height, width, channels]",
              "add_gaussian_noise")
  if isinstance(std, (int, float)) and std < 0:
    raise ValueError(f"std must be >= 0, got {std}")
  noise = jax.random.normal(rng, images.shape, images.dtype)
  return jnp.clip(images + std * noise, 0.0, 1.0).astype(images.dtype)


def occlude(rng: jax.Array, images: jax.Array, fraction: float) -> jax.Array:
  """Zeroes one random square patch per example (all channels).

  The patch side is round(sqrt(fraction) * min(height, width)) pixels (round
  half to even), so for square images about `fraction` of the area is covered;
  for non-square ones about fraction * min(height, width) / max(height,
  width). The patch lies fully inside the image, its top-left corner uniform
  over the valid positions. fraction 0 is the identity.

  Args:
    rng: PRNG key.
    images: float `[batch, height, width, channels]`.
    fraction: occluded fraction of the area of a square image, in [0, 1].

  Returns:
    The occluded images, same shape and dtype.

  Raises:
    ValueError: if `images` is not rank 4 or a Python `fraction` is outside
      [0, 1].
  """
  _check_rank(images, 4, "[batch, height, width, channels]", "occlude")
  if isinstance(fraction, (int, float)) and not 0 <= fraction <= 1:
    raise ValueError(f"fraction must be in [0, 1], got {fraction}")
  batch, height, width, _ = images.shape
  side = jnp.round(jnp.sqrt(jnp.asarray(fraction, jnp.float32)) *
                   min(height, width)).astype(jnp.int32)
  row_rng, col_rng = jax.random.split(rng)
  top = jax.random.randint(row_rng, (batch, 1), 0, height - side + 1)
  left = jax.random.randint(col_rng, (batch, 1), 0, width - side + 1)
  rows = jnp.arange(height)
  cols = jnp.arange(width)
  in_rows = (rows >= top) & (rows < top + side)      # [batch, height]
  in_cols = (cols >= left) & (cols < left + side)    # [batch, width]
  patch = in_rows[:, :, None] & in_cols[:, None, :]
  return jnp.where(patch[..., None], jnp.zeros((), images.dtype), images)


@dataclasses.dataclass(frozen=True)
class Corruption:
  """A corruption and its default sweep.

  Attributes:
    modality: the input it corrupts, "audio" or "image".
    apply: `apply(rng, x, level) -> x`, one of the functions above.
    levels: the corrupted levels, mild to severe (the clean level excluded).
    unit: what a level measures, e.g. "SNR dB".
    clean_level: the level at which `apply` is the identity, first in a
      sweep: +inf for SNR levels, 0.0 for noise std and occluded fraction.
  """
  modality: str
  apply: Callable[..., jax.Array]
  levels: Tuple[float, ...]
  unit: str
  clean_level: float = 0.0

  @property
  def sweep_levels(self) -> Tuple[float, ...]:
    """(clean_level, *levels): the levels of a robustness sweep, in order."""
    return (self.clean_level,) + tuple(self.levels)


_SNR_LEVELS_DB = (20.0, 10.0, 5.0, 0.0, -5.0)

CORRUPTIONS = {
    "audio_white_noise": Corruption("audio", add_white_noise, _SNR_LEVELS_DB,
                                    "SNR dB", clean_level=float("inf")),
    "audio_babble_noise": Corruption("audio", add_babble_noise,
                                     _SNR_LEVELS_DB, "SNR dB",
                                     clean_level=float("inf")),
    "image_gaussian_noise": Corruption("image", add_gaussian_noise,
                                       (0.1, 0.2, 0.3, 0.5, 0.8),
                                       "noise std"),
    "image_occlusion": Corruption("image", occlude,
                                  (0.1, 0.25, 0.4, 0.6, 0.8),
                                  "occluded fraction"),
}
