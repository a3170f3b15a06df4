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
