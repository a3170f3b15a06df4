"""mmjax.data.pp.audio: waveform ops and their augmentations."""

import numpy as np
import pytest
import tensorflow as tf

from mmjax.data.pp import audio
from mmjax.data.pp import builder

SEED = tf.constant([1, 2], tf.int64)


def run(spec, x, seed=SEED):
  return builder.parse(spec)(tf.constant(x), seed).numpy()


def test_to_float_and_pad_or_crop():
  pcm = np.array([16384, -32768, 8192], np.int16)
  out = run("to_float|pad_or_crop(5)", pcm)
  np.testing.assert_allclose(out, [0.5, -1.0, 0.25, 0.0, 0.0])
  np.testing.assert_allclose(run("pad_or_crop(2)", pcm), [16384, -32768])
  np.testing.assert_allclose(run("pad_or_crop(1, mode='center')", pcm),
                             [-32768])


def test_random_crop_is_seeded_and_within_signal():
  x = np.arange(100, dtype=np.float32)
  a = run("pad_or_crop(10, mode='random')", x, tf.constant([3, 4], tf.int64))
  b = run("pad_or_crop(10, mode='random')", x, tf.constant([3, 4], tf.int64))
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(np.diff(a), np.ones(9))
  starts = {run("pad_or_crop(10, mode='random')", x,
                tf.constant([s, 0], tf.int64))[0] for s in range(20)}
  assert len(starts) > 5


def test_random_gain_bounds():
  x = np.ones(4, np.float32)
  for s in range(10):
    g = run("random_gain(6)", x, tf.constant([s, 1], tf.int64))[0]
    assert 10 ** (-6 / 20) - 1e-6 <= g <= 10 ** (6 / 20) + 1e-6


def speed_reference(x, factor):
  """numpy reference: `round(n / f)` samples, x interpolated at j * f."""
  n = len(x)
  positions = np.arange(round(n / factor)) * factor
  return np.interp(positions, np.arange(n), x)


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.1, 1.25])
def test_random_speed_scales_length_and_frequency(factor):
  rate, hz = 8000, 440.0
  x = np.sin(2 * np.pi * hz * np.arange(rate) / rate).astype(np.float32)
  out = run(f"random_speed({factor}, {factor})", x)
  assert out.dtype == np.float32
  assert out.shape == (round(rate / factor),)
  peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * rate / len(out)
  assert abs(peak_hz - hz * factor) <= rate / len(out)


@pytest.mark.parametrize("factor", [0.83, 1.0, 1.17])
@pytest.mark.parametrize("n", [1, 2, 1001])
def test_random_speed_matches_numpy_interp(factor, n):
  x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
  out = run(f"random_speed({factor}, {factor})", x)
  ref = speed_reference(x.astype(np.float64), factor)
  assert out.shape == ref.shape
  np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


def test_random_speed_factor_one_is_identity():
  x = np.random.default_rng(0).standard_normal(777).astype(np.float32)
  np.testing.assert_array_equal(run("random_speed(1.0, 1.0)", x), x)


def test_random_speed_draws_seeded_factors_in_range():
  n = 1000
  x = np.arange(n, dtype=np.float32)  # A ramp: output[1] is the factor.
  factors = []
  for s in range(12):
    out = run("random_speed(0.9, 1.1)", x, tf.constant([s, 7], tf.int64))
    factor = float(out[1])
    assert 0.9 - 1e-6 <= factor <= 1.1 + 1e-6
    assert len(out) == round(n / factor)
    np.testing.assert_allclose(out, speed_reference(x, factor), atol=1e-3)
    factors.append(factor)
  assert len(set(np.round(factors, 4))) > 8
  assert max(factors) - min(factors) > 0.1
  seed = tf.constant([3, 4], tf.int64)
  np.testing.assert_array_equal(run("random_speed(0.9, 1.1)", x, seed),
                                run("random_speed(0.9, 1.1)", x, seed))


def test_random_speed_before_pad_or_crop_in_tf_data():
  x = np.random.default_rng(0).standard_normal(100).astype(np.float32)
  fn = builder.parse("random_speed(0.8, 1.2)|pad_or_crop(100)")
  seeds = tf.constant([[s, 0] for s in range(8)], tf.int64)
  ds = tf.data.Dataset.from_tensor_slices(seeds).map(
      lambda seed: fn(tf.constant(x), seed))
  assert ds.element_spec.shape == (100,)
  outs = np.stack(list(ds.as_numpy_iterator()))
  assert np.isfinite(outs).all()
  assert len({o.tobytes() for o in outs}) == len(outs)


def measured_snr_db(x, out):
  return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) /
                       np.mean((out.astype(np.float64) - x) ** 2))


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_random_noise_fixed_snr(snr_db):
  rate = 8000
  x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
  out = run(f"random_noise({snr_db}, {snr_db})", x)
  assert out.shape == x.shape and out.dtype == np.float32
  assert abs(measured_snr_db(x, out) - snr_db) < 0.5
  noise = out - x
  assert abs(noise.mean()) < 0.1 * noise.std()


def test_random_noise_snr_drawn_in_range():
  x = np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32)
  snrs = [measured_snr_db(x, run("random_noise(5, 20)", x,
                                 tf.constant([s, 3], tf.int64)))
          for s in range(16)]
  assert min(snrs) >= 5 - 0.5 and max(snrs) <= 20 + 0.5
  assert max(snrs) - min(snrs) > 5


def test_random_noise_keeps_silence_silent():
  out = run("random_noise(0, 10)", np.zeros(8000, np.float32))
  assert np.isfinite(out).all()
  np.testing.assert_array_equal(out, np.zeros(8000, np.float32))


def test_random_noise_is_seeded():
  x = np.random.default_rng(0).standard_normal(500).astype(np.float32)
  a = run("random_noise(10, 10)", x, tf.constant([5, 6], tf.int64))
  b = run("random_noise(10, 10)", x, tf.constant([5, 6], tf.int64))
  c = run("random_noise(10, 10)", x, tf.constant([5, 7], tf.int64))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


@pytest.mark.parametrize("spec, message", [
    ("random_speed(0.0)", "random_speed min_factor must be .* > 0"),
    ("random_speed(-0.5, 1.1)", "random_speed min_factor must be .* > 0"),
    ("random_speed(0.9, 0)", "random_speed max_factor must be .* > 0"),
    ("random_speed(1.2, 1.1)", r"min_factor \(1.2\) must be <= max_factor"),
    ("random_speed(1.0, 1e999)", "random_speed max_factor must be .* > 0"),
    ("random_noise(20, 10)", r"min_snr_db \(20\) must be <= max_snr_db"),
    ("random_noise(-1e999, 10)", "random_noise min_snr_db must be finite"),
    ("random_noise(10)", "bad arguments"),
])
def test_augmentation_ops_reject_bad_arguments(spec, message):
  with pytest.raises(ValueError, match=message):
    builder.parse(spec)


def test_augmentation_ops_reject_nan():
  with pytest.raises(ValueError, match="min_factor"):
    audio.random_speed(float("nan"), 1.1)
  with pytest.raises(ValueError, match="max_snr_db"):
    audio.random_noise(0.0, float("nan"))
