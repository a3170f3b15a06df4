"""mmjax.data.pp.general: modality-neutral ops."""

import numpy as np
import tensorflow as tf

from mmjax.data.pp import builder

SEED = tf.constant([1, 2], tf.int64)


def run(spec, x, seed=SEED):
  return builder.parse(spec)(tf.constant(x), seed).numpy()


def test_value_range_maps_uint8_to_unit_interval():
  out = run("value_range(0, 1)", np.array([[[0]], [[255]]], np.uint8))
  np.testing.assert_allclose(out.ravel(), [0.0, 1.0])
  assert out.dtype == np.float32
