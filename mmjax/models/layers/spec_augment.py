"""SpecAugment frequency and time masking (Park et al. 2019, "SpecAugment: A
Simple Data Augmentation Method for Automatic Speech Recognition").

Time warping, the paper's third policy, is left out: the paper calls it the
most expensive and least influential of the three.
"""

import jax
import jax.numpy as jnp


def _band_mask(rng: jax.Array, batch: int, length: int, num_masks: int,
               max_width: int) -> jax.Array:
  """bool `[batch, length]`, True inside any of `num_masks` bands per example.

  Each band's width is uniform in [0, min(max_width, length)] and its start
  uniform in [0, length - width], so the band always fits.
  """
  width_rng, start_rng = jax.random.split(rng)
  widths = jax.random.randint(width_rng, (batch, num_masks), 0,
                              min(max_width, length) + 1)
  starts = jax.random.randint(start_rng, (batch, num_masks), 0,
                              length - widths + 1)
  pos = jnp.arange(length)
  inside = ((pos >= starts[..., None]) &
            (pos < (starts + widths)[..., None]))
  return inside.any(axis=1)


def spec_augment(rng: jax.Array, spec: jax.Array, *, num_freq_masks: int,
                 max_freq_width: int, num_time_masks: int,
                 max_time_width: int, mask_value: float = 0.0) -> jax.Array:
  """Masks random frequency bands and time spans, independently per example.

  Every example gets `num_freq_masks` bands of consecutive frequency bins,
  each of width f ~ U{0, ..., max_freq_width} starting at f0 ~ U{0, ...,
  freq - f}, and `num_time_masks` spans of consecutive frames likewise; the
  masked entries are set to `mask_value`. Bands may overlap. Widths larger
  than the axis are capped at its length. Runs under `jax.jit` (the counts
  and widths are static).

  Args:
    rng: PRNG key.
    spec: float `[batch, time, freq]`, e.g. a standardised log-mel, for which
      the default `mask_value` 0.0 is the per-example mean (the paper masks
      with the mean).
    num_freq_masks: frequency bands per example, >= 0.
    max_freq_width: maximum band width in bins, >= 0.
    num_time_masks: time spans per example, >= 0.
    max_time_width: maximum span width in frames, >= 0.
    mask_value: value written into masked entries.

  Returns:
    `spec` with the masks applied, same shape and dtype. With no masks (zero
    counts or widths) `spec` itself.

  Raises:
    ValueError: if `spec` is not rank 3 or a count or width is negative.
  """
  if spec.ndim != 3:
    raise ValueError(f"spec_augment expects [batch, time, freq], got shape "
                     f"{tuple(spec.shape)}")
  counts = dict(num_freq_masks=num_freq_masks, max_freq_width=max_freq_width,
                num_time_masks=num_time_masks, max_time_width=max_time_width)
  negative = {k: v for k, v in counts.items() if v < 0}
  if negative:
    raise ValueError(f"spec_augment counts and widths must be >= 0, got "
                     f"{negative}")
  mask_freq = num_freq_masks > 0 and max_freq_width > 0
  mask_time = num_time_masks > 0 and max_time_width > 0
  if not (mask_freq or mask_time):
    return spec
  batch, time, freq = spec.shape
  freq_rng, time_rng = jax.random.split(rng)
  masked = jnp.zeros((batch, time, freq), bool)
  if mask_freq:
    masked |= _band_mask(freq_rng, batch, freq, num_freq_masks,
                         max_freq_width)[:, None, :]
  if mask_time:
    masked |= _band_mask(time_rng, batch, time, num_time_masks,
                         max_time_width)[:, :, None]
  return jnp.where(masked, jnp.asarray(mask_value, spec.dtype), spec)
