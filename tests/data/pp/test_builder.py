import numpy as np
import pytest
import tensorflow as tf

from mmjax.data import preprocess

SEED = tf.constant([1, 2], tf.int64)


def run(spec, x, seed=SEED):
  return preprocess.parse(spec)(tf.constant(x), seed).numpy()


def test_value_range_maps_uint8_to_unit_interval():
  out = run("value_range(0, 1)", np.array([[[0]], [[255]]], np.uint8))
  np.testing.assert_allclose(out.ravel(), [0.0, 1.0])
  assert out.dtype == np.float32


def test_chain_applies_left_to_right():
  out = run("value_range(0, 1)|normalize(0.5, 0.5)",
            np.array([[[0]], [[255]]], np.uint8))
  np.testing.assert_allclose(out.ravel(), [-1.0, 1.0])


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


def test_random_translate_keeps_shape_and_content():
  img = np.zeros((8, 8, 1), np.float32)
  img[4, 4, 0] = 1.0
  out = run("random_translate(2)", img)
  assert out.shape == (8, 8, 1)
  assert out.sum() == 1.0
  (r,), (c,) = np.nonzero(out[..., 0])[0:1], np.nonzero(out[..., 0])[1:2]
  assert abs(r - 4) <= 2 and abs(c - 4) <= 2


def test_pad_to_places_the_image_whole_on_a_zero_canvas():
  img = np.arange(1, 7, dtype=np.float32).reshape(2, 3, 1)
  centred = run("pad_to(5, 6)", img)
  expected = np.zeros((5, 6, 1), np.float32)
  expected[1:3, 1:4] = img  # room (3, 3): offsets 3 // 2 = 1
  np.testing.assert_array_equal(centred, expected)
  corners = set()
  for s in range(60):
    out = run("pad_to(5, 6, mode='random')", img, tf.constant([s, 7], tf.int64))
    (r, c) = np.argwhere(out[..., 0] == 1.0)[0]
    np.testing.assert_array_equal(out[r:r + 2, c:c + 3], img)
    assert out.sum() == img.sum()
    corners.add((int(r), int(c)))
  assert corners == {(r, c) for r in range(4) for c in range(4)}
  with pytest.raises(tf.errors.InvalidArgumentError, match="larger"):
    run("pad_to(1)", img)
  with pytest.raises(ValueError, match="mode"):
    preprocess.parse("pad_to(5, mode='edge')")


def test_random_gain_bounds():
  x = np.ones(4, np.float32)
  for s in range(10):
    g = run("random_gain(6)", x, tf.constant([s, 1], tf.int64))[0]
    assert 10 ** (-6 / 20) - 1e-6 <= g <= 10 ** (6 / 20) + 1e-6


def test_resize():
  out = run("resize(14)", np.ones((28, 28, 1), np.float32))
  assert out.shape == (14, 14, 1)


def test_empty_spec_is_identity():
  np.testing.assert_array_equal(run("", np.array([1, 2], np.int16)), [1, 2])


@pytest.mark.parametrize("spec, message", [
    ("nope(1)", "unknown preprocessing op 'nope'"),
    ("pad_or_crop(", "cannot parse"),
    ("pad_or_crop(x)", "must be Python literals"),
    ("pad_or_crop(1, 2, 3)", "bad arguments"),
    ("pad_or_crop(8, mode='left')", "start|center|random"),
])
def test_bad_specs_raise_clear_errors(spec, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("|", r"\|")):
    preprocess.parse(spec)


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
  fn = preprocess.parse("random_speed(0.8, 1.2)|pad_or_crop(100)")
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
    preprocess.parse(spec)


def test_augmentation_ops_reject_nan():
  with pytest.raises(ValueError, match="min_factor"):
    preprocess.random_speed(float("nan"), 1.1)
  with pytest.raises(ValueError, match="max_snr_db"):
    preprocess.random_noise(0.0, float("nan"))
