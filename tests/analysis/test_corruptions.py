import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.analysis.corruptions import CORRUPTIONS
from mmjax.analysis.corruptions import add_babble_noise
from mmjax.analysis.corruptions import add_gaussian_noise
from mmjax.analysis.corruptions import add_white_noise
from mmjax.analysis.corruptions import occlude


def _waveforms(batch=4, samples=8000, seed=0):
  """Sines of different frequencies and amplitudes, [batch, samples]."""
  t = np.arange(samples) / 8000.0
  rng = np.random.default_rng(seed)
  freqs = rng.uniform(100.0, 1000.0, batch)
  amps = rng.uniform(0.05, 0.8, batch)
  return jnp.asarray(amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t),
                     jnp.float32)


def _snr_db(clean, noisy):
  clean = np.asarray(clean, np.float64)
  noise = np.asarray(noisy, np.float64) - clean
  return 10 * np.log10(np.mean(clean ** 2, -1) / np.mean(noise ** 2, -1))


def _blocks(batch=6, width=100):
  """Example i is non-zero (random values) only on samples [i*w, (i+1)*w)."""
  values = np.random.default_rng(1).uniform(0.5, 1.0, (batch, batch * width))
  own = np.arange(batch * width)[None, :] // width == np.arange(batch)[:, None]
  return jnp.asarray(values * own, jnp.float32), own


def _images(batch=16, size=28, channels=1, value=None, seed=0):
  if value is not None:
    return jnp.full((batch, size, size, channels), value, jnp.float32)
  # In (0.5, 1], so no pixel is zero before occlusion.
  return 1.0 - 0.5 * jax.random.uniform(
      jax.random.key(seed), (batch, size, size, channels))


@pytest.mark.parametrize("snr_db", [20.0, 5.0, 0.0, -5.0])
def test_white_noise_snr(snr_db):
  clean = _waveforms()
  noisy = add_white_noise(jax.random.key(0), clean, snr_db)
  assert noisy.shape == clean.shape and noisy.dtype == clean.dtype
  np.testing.assert_allclose(_snr_db(clean, noisy), snr_db, atol=0.5)
  # The noise is white: its lag-1 autocorrelation is near 0.
  noise = np.asarray(noisy - clean)
  lag1 = np.mean(noise[:, 1:] * noise[:, :-1]) / np.mean(noise ** 2)
  assert abs(lag1) < 0.05


@pytest.mark.parametrize("snr_db", [20.0, 0.0, -5.0])
def test_babble_noise_snr(snr_db):
  clean = _waveforms(batch=8)
  noisy = add_babble_noise(jax.random.key(1), clean, snr_db)
  np.testing.assert_allclose(_snr_db(clean, noisy), snr_db, atol=0.5)


@pytest.mark.parametrize("num_speakers", [1, 3, 5])
def test_babble_is_made_of_other_examples(num_speakers):
  clean, own = _blocks()
  noisy = add_babble_noise(jax.random.key(2), clean, 0.0, num_speakers)
  noise = np.asarray(noisy - clean)
  batch = clean.shape[0]
  talker_sets = set()
  for i in range(batch):
    # Never the example itself.
    np.testing.assert_array_equal(noise[i][own[i]], 0.0)
    talkers = [j for j in range(batch) if np.abs(noise[i][own[j]]).max() > 0]
    assert len(talkers) == num_speakers
    for j in talkers:
      # Each talker is a scaled copy of example j, all with the same scale.
      ratio = noise[i][own[j]] / np.asarray(clean)[j][own[j]]
      np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
    talker_sets.add(tuple(talkers))
  # Talkers are drawn per example, not one shared set.
  assert len(talker_sets) > 1


def test_babble_talkers_capped_at_batch_minus_one():
  clean, own = _blocks(batch=2)
  noise = np.asarray(add_babble_noise(jax.random.key(3), clean, 0.0, 3) -
                     clean)
  np.testing.assert_array_equal(noise[0][own[0]], 0.0)
  assert np.abs(noise[0][own[1]]).min() > 0


@pytest.mark.parametrize("fn", [add_white_noise, add_babble_noise])
def test_silent_example_stays_zero_and_finite(fn):
  clean = _waveforms(batch=3).at[1].set(0.0)
  noisy = np.asarray(fn(jax.random.key(4), clean, -5.0))
  assert np.all(np.isfinite(noisy))
  np.testing.assert_array_equal(noisy[1], 0.0)
  assert np.abs(noisy[0] - np.asarray(clean[0])).max() > 0


def test_babble_with_silent_talkers_adds_nothing():
  clean = jnp.zeros((2, 100)).at[0].set(1.0)
  noisy = np.asarray(add_babble_noise(jax.random.key(5), clean, 0.0))
  assert np.all(np.isfinite(noisy))
  np.testing.assert_array_equal(noisy, np.asarray(clean))


def test_audio_rejects_bad_inputs():
  with pytest.raises(ValueError, match="batch >= 2"):
    add_babble_noise(jax.random.key(0), jnp.ones((1, 100)), 0.0)
  with pytest.raises(ValueError, match="num_speakers"):
    add_babble_noise(jax.random.key(0), jnp.ones((4, 100)), 0.0, 0)
  for fn in (add_white_noise, add_babble_noise):
    with pytest.raises(ValueError, match=r"\[batch, samples\]"):
      fn(jax.random.key(0), jnp.ones((4, 100, 1)), 0.0)


def test_gaussian_noise_std_and_range():
  grey = _images(batch=32, value=0.5)
  noisy = np.asarray(add_gaussian_noise(jax.random.key(6), grey, 0.1))
  # 0.5 is 5 std from the clip bounds, so clipping is negligible.
  assert np.std(noisy - 0.5) == pytest.approx(0.1, rel=0.02)
  assert abs(np.mean(noisy - 0.5)) < 0.002
  heavy = np.asarray(add_gaussian_noise(jax.random.key(7), grey, 0.8))
  assert heavy.min() == 0.0 and heavy.max() == 1.0  # clipped, not beyond
  assert 0.3 < np.mean((heavy == 0.0) | (heavy == 1.0)) < 0.8


def test_gaussian_noise_rejects_bad_inputs():
  with pytest.raises(ValueError, match="std"):
    add_gaussian_noise(jax.random.key(0), _images(batch=1), -0.1)
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    add_gaussian_noise(jax.random.key(0), jnp.ones((2, 28, 28)), 0.1)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.4, 0.6, 0.8, 1.0])
def test_occlusion_covers_requested_fraction(fraction):
  images = _images(channels=3)
  out = np.asarray(occlude(jax.random.key(8), images, fraction))
  zero = out == 0.0
  # All channels of a pixel together.
  np.testing.assert_array_equal(zero, np.broadcast_to(zero[..., :1],
                                                      zero.shape))
  np.testing.assert_array_equal(out[~zero], np.asarray(images)[~zero])
  exact = math.sqrt(fraction) * 28
  side = round(exact)
  # Rounding the side by at most 0.5 moves the area fraction by at most
  # (exact + 0.25) / 28**2, below 0.035 for 28x28.
  tolerance = (exact + 0.25) / 28 ** 2
  positions = set()
  for example in zero[..., 0]:
    rows = np.flatnonzero(example.any(axis=1))
    cols = np.flatnonzero(example.any(axis=0))
    # One solid side x side square.
    assert len(rows) == len(cols) == side
    assert example.sum() == side ** 2
    assert example[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
    assert abs(example.mean() - fraction) <= tolerance
    positions.add((rows[0], cols[0]))
  if fraction < 1.0:
    assert len(positions) > 1


def test_occlusion_of_zero_is_identity():
  images = _images()
  out = occlude(jax.random.key(9), images, 0.0)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(images))


def test_occlusion_rejects_bad_inputs():
  with pytest.raises(ValueError, match="fraction"):
    occlude(jax.random.key(0), _images(batch=1), 1.5)
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    occlude(jax.random.key(0), jnp.ones((28, 28, 1)), 0.1)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_registry_runs_under_jit_and_clean_level_is_identity(name):
  corruption = CORRUPTIONS[name]
  x = _waveforms(batch=4) if corruption.modality == "audio" else _images()
  assert corruption.sweep_levels[0] == corruption.clean_level
  assert len(corruption.sweep_levels) == len(corruption.levels) + 1
  jitted = jax.jit(corruption.apply, static_argnums=2)
  eager_out = corruption.apply(jax.random.key(10), x, corruption.levels[2])
  jit_out = jitted(jax.random.key(10), x, corruption.levels[2])
  np.testing.assert_allclose(np.asarray(jit_out), np.asarray(eager_out),
                             atol=1e-5)
  assert not np.allclose(np.asarray(jit_out), np.asarray(x))
  # A traced level works too.
  traced_out = jax.jit(corruption.apply)(jax.random.key(10), x,
                                         corruption.levels[2])
  np.testing.assert_allclose(np.asarray(traced_out), np.asarray(eager_out),
                             atol=1e-5)
  clean = jitted(jax.random.key(11), x, corruption.clean_level)
  np.testing.assert_array_equal(np.asarray(clean), np.asarray(x))


def test_registry_contents():
  expected = {
      "audio_white_noise": ("audio", add_white_noise, "SNR dB", math.inf),
      "audio_babble_noise": ("audio", add_babble_noise, "SNR dB", math.inf),
      "image_gaussian_noise": ("image", add_gaussian_noise, "noise std", 0.0),
      "image_occlusion": ("image", occlude, "occluded fraction", 0.0),
  }
  assert set(CORRUPTIONS) == set(expected)
  for name, (modality, apply, unit, clean_level) in expected.items():
    corruption = CORRUPTIONS[name]
    assert (corruption.modality, corruption.apply, corruption.unit,
            corruption.clean_level) == (modality, apply, unit, clean_level)
  assert CORRUPTIONS["audio_white_noise"].levels == (20, 10, 5, 0, -5)
  assert CORRUPTIONS["image_occlusion"].levels == (0.1, 0.25, 0.4, 0.6, 0.8)
  with pytest.raises(AttributeError):
    CORRUPTIONS["image_occlusion"].levels = ()  # frozen


def test_babble_jit_with_static_num_speakers():
  clean, own = _blocks()
  fn = jax.jit(functools.partial(add_babble_noise, num_speakers=2),
               static_argnums=2)
  noise = np.asarray(fn(jax.random.key(12), clean, 10.0) - clean)
  for i in range(clean.shape[0]):
    np.testing.assert_array_equal(noise[i][own[i]], 0.0)
    talkers = [j for j in range(clean.shape[0])
               if np.abs(noise[i][own[j]]).max() > 0]
    assert len(talkers) == 2
