"""Image pp ops: `x` is one image `[height, width, channels]`. See `registry`
for the op contract."""

import tensorflow as tf

from mmjax.data.pp.registry import deterministic
from mmjax.data.pp.registry import Op
from mmjax.data.pp.registry import OPS


@OPS.register("resize")
def resize(height: int, width: int = None, method: str = "bilinear") -> Op:
  """Resizes `[h, w, c]` to `[height, width, c]` (float32) with tf.image.resize."""
  size = (height, width or height)
  return deterministic(lambda x: tf.image.resize(x, size, method=method))


@OPS.register("random_translate")
def random_translate(max_pixels: int) -> Op:
  """Shifts the image by up to `max_pixels` in each direction, zero-filled."""
  def op(x, seed):
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    padded = tf.pad(x, [[max_pixels, max_pixels], [max_pixels, max_pixels],
                        [0, 0]])
    offsets = tf.random.stateless_uniform(
        [2], seed, minval=0, maxval=2 * max_pixels + 1, dtype=tf.int32)
    return tf.slice(padded, [offsets[0], offsets[1], 0], [h, w, -1])
  return op


@OPS.register("pad_to")
def pad_to(height: int, width: int = None, mode: str = "center") -> Op:
  """Places `[h, w, c]` on a zero canvas `[height, width, c]` (h <= height,
  w <= width): centred (`mode="center"`, extra pixel below/right) or at an
  offset uniform over every placement (`"random"`), as a small digit sits in
  a Moving MNIST frame.

  Raises:
    ValueError: for another `mode` (when the op is built);
    tf.errors.InvalidArgumentError: for an image larger than the canvas.
  """
  if mode not in ("center", "random"):
    raise ValueError(f"pad_to mode must be 'center' or 'random', got {mode!r}")
  size = tf.constant([height, width or height], tf.int32)

  def op(x, seed):
    room = size - tf.shape(x)[:2]
    tf.debugging.assert_non_negative(
        room, message=f"pad_to({height}, {width or height}): image larger "
        "than the canvas")
    if mode == "center":
      offsets = room // 2
    else:
      offsets = tf.cast(tf.floor(tf.random.stateless_uniform([2], seed) *
                                 tf.cast(room + 1, tf.float32)), tf.int32)
    return tf.pad(x, tf.stack([tf.stack([offsets[0], room[0] - offsets[0]]),
                               tf.stack([offsets[1], room[1] - offsets[1]]),
                               tf.zeros([2], tf.int32)]))
  return op


@OPS.register("random_resized_crop")
def random_resized_crop(size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                        method: str = "bilinear") -> Op:
  """A random window of `[h, w, c]` resized to `[size, size, c]` (float32):
  the Inception crop (Szegedy et al. 2015, "Going deeper with
  convolutions"; torchvision's `RandomResizedCrop`, big_vision's
  `inception_crop`), the standard ImageNet / CLIP / ViT training
  augmentation.

  The window covers a fraction of the image's area drawn from `scale` and
  has a width / height in `ratio` (`tf.image.
  stateless_sample_distorted_bounding_box`, 100 tries; the whole image when
  none fits).
  """
  def op(x, seed):
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(x), tf.zeros([1, 0, 4], tf.float32), seed,
        min_object_covered=0.0, aspect_ratio_range=ratio, area_range=scale,
        use_image_if_no_bounding_boxes=True)
    window = tf.slice(x, begin, crop_size)
    return tf.image.resize(window, (size, size), method=method)
  return op


@OPS.register("random_flip")
def random_flip() -> Op:
  """Flips `[h, w, c]` left-right with probability 1/2."""
  return lambda x, seed: tf.image.stateless_random_flip_left_right(x, seed)
