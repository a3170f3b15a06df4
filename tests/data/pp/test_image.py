"""mmjax.data.pp.image: image ops."""

import numpy as np
import pytest
import tensorflow as tf

from mmjax.data.pp import builder

SEED = tf.constant([1, 2], tf.int64)


def run(spec, x, seed=SEED):
  return builder.parse(spec)(tf.constant(x), seed).numpy()


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
    builder.parse("pad_to(5, mode='edge')")


def test_resize():
  out = run("resize(14)", np.ones((28, 28, 1), np.float32))
  assert out.shape == (14, 14, 1)
