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


def test_random_resized_crop_is_a_seeded_window_of_the_image():
  # Pixel value = 1000 * row + column: a window's top-left pixel says where.
  rows, cols = np.mgrid[0:64, 0:48]
  img = (1000 * rows + cols).astype(np.float32)[..., None]
  spec = "random_resized_crop(16, scale=(0.2, 0.5), method='nearest')"
  outs = [run(spec, img, tf.constant([s, 3], tf.int64)) for s in range(20)]
  for out in outs:
    assert out.shape == (16, 16, 1) and out.dtype == np.float32
    top, left = divmod(int(out[0, 0, 0]), 1000)
    bottom, right = divmod(int(out[-1, -1, 0]), 1000)
    # Nearest-neighbour samples lie inside the window, on a 16-pixel grid.
    height, width = bottom - top + 1, right - left + 1
    area = height * width / (64 * 48)
    assert 0.2 * 0.75 < area < 0.5 * 1.25, (top, left, bottom, right)
  assert len({o[0, 0, 0] for o in outs}) > 10  # windows differ by seed
  np.testing.assert_array_equal(run(spec, img, tf.constant([5, 3], tf.int64)),
                                outs[5])


def test_random_flip_flips_left_right_about_half_the_time():
  img = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
  flipped = 0
  for s in range(40):
    out = run("random_flip", img, tf.constant([s, 0], tf.int64))
    if not np.array_equal(out, img):
      np.testing.assert_array_equal(out, img[:, ::-1])
      flipped += 1
  assert 10 <= flipped <= 30
