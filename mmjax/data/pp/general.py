"""Modality-neutral pp ops: elementwise maps of any tensor (an image, a
waveform, one video frame) to float32. See `registry` for the op contract."""

from typing import Any

import tensorflow as tf

from mmjax.data.pp.registry import deterministic
from mmjax.data.pp.registry import Op
from mmjax.data.pp.registry import OPS


@OPS.register("value_range")
def value_range(vmin: float = -1.0, vmax: float = 1.0,
                in_min: float = 0.0, in_max: float = 255.0) -> Op:
  """Linearly maps values from `[in_min, in_max]` to `[vmin, vmax]`, float32."""
  scale = (vmax - vmin) / (in_max - in_min)
  return deterministic(
      lambda x: (tf.cast(x, tf.float32) - in_min) * scale + vmin)


@OPS.register("normalize")
def normalize(mean: Any, std: Any) -> Op:
  """`(x - mean) / std` per channel, float32 (mean/std scalars or per-channel)."""
  mean_t = tf.constant(mean, tf.float32)
  std_t = tf.constant(std, tf.float32)
  return deterministic(lambda x: (tf.cast(x, tf.float32) - mean_t) / std_t)
