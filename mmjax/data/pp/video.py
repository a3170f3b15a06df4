"""Video pp ops, and the example-level ops that keep a soundtrack aligned.

Per-modality video ops (`video_*`) take and return one clip as
`{"frames": [num_frames, height, width, channels], "frame_mask": bool
[num_frames]}`, the video encoders' input (`mmjax.models.encoders.video`);
one random draw serves every frame of a clip, so a crop or flip is the same
throughout it.

Example-level ops (`sample_clip`, `shift_soundtrack`) run on the whole
example before the per-modality ops (the `"example"` key of a pp dict, see
`mmjax.data.pipeline`), because the time window cut from the video must be
cut from its soundtrack too.
"""

from typing import Any, Dict

import tensorflow as tf

from mmjax.data.pp import general
from mmjax.data.pp.registry import Op
from mmjax.data.pp.registry import OPS

Example = Dict[str, Any]
CLIP_MODES = ("random", "center", "start")


def frame_indices(num_stored: tf.Tensor, start: tf.Tensor, num_frames: int,
                  stride: int):
  """Indices `start + stride * k`, k < num_frames, clipped into the clip, and
  the mask of those inside it: (int32 [num_frames], bool [num_frames])."""
  indices = start + stride * tf.range(num_frames)
  return tf.minimum(indices, num_stored - 1), indices < num_stored


def clip_start(num_stored: tf.Tensor, span: int, mode: str,
               seed: tf.Tensor) -> tf.Tensor:
  """First frame of a window of `span` frames: uniform over the windows that
  fit in training ("random"), the middle one ("center") or 0 ("start");
  0 when the clip is shorter than the window."""
  excess = tf.maximum(num_stored - span, 0)
  if mode == "start":
    return tf.constant(0, tf.int32)
  if mode == "center":
    return excess // 2
  return tf.random.stateless_uniform([], seed, minval=0, maxval=excess + 1,
                                     dtype=tf.int32)


def _window(x: tf.Tensor, start: tf.Tensor, length: int) -> tf.Tensor:
  """`x[start:start + length]`, zero-padded at the end to `length`."""
  x = x[start:start + length]
  x = tf.pad(x, [[0, length - tf.shape(x)[0]]])
  return tf.ensure_shape(x, [length])


@OPS.register("sample_clip")
def sample_clip(num_frames: int, stride: int = 1, frame_rate: float = 8.0,
                sample_rate: int = 8000, mode: str = "random",
                video_key: str = "video", audio_key: str = "audio"
                ) -> Op:
  """Samples `num_frames` frames every `stride` frames, and the same time
  window of the soundtrack (an example-level op).

  The window starts at frame s (see `clip_start`: random when training,
  centred when evaluating) and covers `num_frames * stride` stored frames,
  i.e. `[s, s + num_frames * stride) / frame_rate` seconds; the soundtrack's
  samples `[round(s * sample_rate / frame_rate), + num_frames * stride *
  sample_rate / frame_rate)` are cut with it (zero-padded past the end), so
  frame k of the output is shown while its audio is `[k * stride, (k + 1) *
  stride) / frame_rate` seconds into the window. Frames past the end of a
  short clip are zeros with `frame_mask` False.

  Args:
    num_frames: frames out.
    stride: keep every `stride`-th stored frame.
    frame_rate: stored frames per second (Hz).
    sample_rate: soundtrack samples per second (Hz).
    mode: "random", "center" or "start".
    video_key: the example's video feature, uint8 `[frames, h, w, c]`.
    audio_key: its soundtrack `[samples]` (left out if the example has none).

  Returns:
    An op mapping the example to one whose `video_key` is `{"frames":
    [num_frames, h, w, c] (input dtype), "frame_mask": bool [num_frames]}`
    and whose `audio_key` is `[num_frames * stride * sample_rate /
    frame_rate]` samples (input dtype).

  Raises:
    ValueError: for an unknown mode, a non-positive count, or a window whose
      length in samples is not whole.
  """
  if mode not in CLIP_MODES:
    raise ValueError(f"sample_clip mode must be one of {CLIP_MODES}, got {mode!r}")
  if num_frames < 1 or stride < 1:
    raise ValueError(f"sample_clip needs num_frames >= 1 and stride >= 1, got "
                     f"{num_frames} and {stride}")
  samples_per_frame = sample_rate / frame_rate
  window_samples = num_frames * stride * samples_per_frame
  if window_samples != int(window_samples):
    raise ValueError(
        f"sample_clip: {num_frames} x {stride} frames at {frame_rate} Hz are "
        f"{window_samples} samples at {sample_rate} Hz, not a whole number")
  span = (num_frames - 1) * stride + 1

  def op(example: Example, seed: tf.Tensor) -> Example:
    if video_key not in example:
      raise KeyError(f"sample_clip: the example has no {video_key!r} feature; "
                     f"it has {sorted(example)}")
    video = example[video_key]
    num_stored = tf.shape(video)[0]
    start = clip_start(num_stored, span, mode, seed)
    indices, valid = frame_indices(num_stored, start, num_frames, stride)
    frames = tf.gather(video, indices)
    frames = tf.where(valid[:, None, None, None], frames, tf.zeros_like(frames))
    out = dict(example)
    out[video_key] = {"frames": frames, "frame_mask": valid}
    if audio_key in example:
      first = tf.cast(tf.round(tf.cast(start, tf.float64) * samples_per_frame),
                      tf.int32)
      out[audio_key] = _window(example[audio_key], first, int(window_samples))
    return out
  return op


@OPS.register("shift_soundtrack")
def shift_soundtrack(milliseconds: float, sample_rate: int = 8000,
                     audio_key: str = "audio") -> Op:
  """Delays (positive) or advances (negative) the soundtrack against the
  video by `milliseconds`, keeping its length: zeros come in at one end, the
  samples pushed past the other are dropped (an example-level op, for
  synchronisation experiments and robustness tests).

  Args:
    milliseconds: the shift (ms); rounded to whole samples.
    sample_rate: the soundtrack's rate (Hz).
    audio_key: the soundtrack feature `[samples]`.

  Raises:
    KeyError: (when run) naming `audio_key` if the example lacks it.
  """
  shift = int(round(milliseconds * sample_rate / 1000.0))

  def op(example: Example, seed: tf.Tensor) -> Example:
    del seed
    if audio_key not in example:
      raise KeyError(f"shift_soundtrack: the example has no {audio_key!r} "
                     f"feature; it has {sorted(example)}")
    audio = example[audio_key]
    length = tf.shape(audio)[0]
    if shift >= 0:
      moved = tf.concat([tf.zeros([shift], audio.dtype), audio], 0)[:length]
    else:
      moved = tf.concat([audio[-shift:], tf.zeros([-shift], audio.dtype)], 0)
      moved = moved[:length]
    return dict(example, **{audio_key: moved})
  return op


def _on_frames(fn) -> Op:
  """A clip op applying `fn(frames [T, h, w, c], seed) -> frames`."""
  def op(clip, seed):
    return dict(clip, frames=fn(clip["frames"], seed))
  return op


@OPS.register("video_value_range")
def video_value_range(vmin: float = -1.0, vmax: float = 1.0,
                      in_min: float = 0.0, in_max: float = 255.0
                      ) -> Op:
  """`value_range` on every frame: float32 frames in [vmin, vmax]."""
  image_op = general.value_range(vmin, vmax, in_min, in_max)
  return _on_frames(image_op)


@OPS.register("video_normalize")
def video_normalize(mean: Any, std: Any) -> Op:
  """`(frames - mean) / std` per channel, float32."""
  return _on_frames(general.normalize(mean, std))


@OPS.register("video_resize")
def video_resize(height: int, width: int = None,
                 method: str = "bilinear") -> Op:
  """Resizes every frame to `[height, width]` (float32, tf.image.resize)."""
  size = (height, width or height)
  return _on_frames(lambda x, seed: tf.image.resize(x, size, method=method))


@OPS.register("video_random_crop")
def video_random_crop(height: int, width: int = None) -> Op:
  """The same random `[height, width]` window of every frame.

  Raises:
    tf.errors.InvalidArgumentError: (when run) for frames smaller than it.
  """
  width = width or height

  def crop(x, seed):
    size = tf.stack([tf.shape(x)[0], height, width, tf.shape(x)[3]])
    return tf.image.stateless_random_crop(x, size, seed)
  return _on_frames(crop)


@OPS.register("video_center_crop")
def video_center_crop(height: int, width: int = None) -> Op:
  """The central `[height, width]` window of every frame."""
  width = width or height

  def crop(x, seed):
    del seed
    top = (tf.shape(x)[1] - height) // 2
    left = (tf.shape(x)[2] - width) // 2
    return x[:, top:top + height, left:left + width, :]
  return _on_frames(crop)


@OPS.register("video_random_flip")
def video_random_flip() -> Op:
  """Flips the whole clip left-right with probability 1/2."""
  def flip(x, seed):
    coin = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(coin, lambda: tf.reverse(x, [2]), lambda: x)
  return _on_frames(flip)
