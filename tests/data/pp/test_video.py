"""Video pp ops and the aligned clip sampling, against direct computations."""

import numpy as np
import pytest
import tensorflow as tf

from mmjax.data.pp import builder

FRAME_RATE, SAMPLE_RATE = 8.0, 8000
SAMPLES_PER_FRAME = 1000


def _example(num_frames=16, size=4):
  """Frame i is filled with i; audio sample j is j (so windows are readable)."""
  video = np.broadcast_to(np.arange(num_frames, dtype=np.uint8)[:, None, None,
                                                                None],
                          (num_frames, size, size, 1)).copy()
  audio = np.arange(num_frames * SAMPLES_PER_FRAME, dtype=np.int32)
  return {"video": tf.constant(video), "audio": tf.constant(audio),
          "label": tf.constant(3)}


def _run(spec, example, seed=(1, 2)):
  return builder.parse(spec)(example, tf.constant(seed, tf.int64))


def _direct(start, num_frames, stride, stored=16):
  """Frame indices, mask and audio samples computed without the op."""
  indices = [start + stride * k for k in range(num_frames)]
  mask = [i < stored for i in indices]
  first = start * SAMPLES_PER_FRAME
  length = num_frames * stride * SAMPLES_PER_FRAME
  audio = [j if j < stored * SAMPLES_PER_FRAME else 0
           for j in range(first, first + length)]
  return indices, mask, audio


@pytest.mark.parametrize("num_frames,stride,mode,start", [
    (8, 2, "start", 0), (8, 2, "center", 0), (4, 3, "center", 3),
    (5, 1, "center", 5), (4, 2, "start", 0)])
def test_sample_clip_frames_and_audio_window_match_direct_computation(
    num_frames, stride, mode, start):
  out = _run(f"sample_clip({num_frames}, {stride}, mode={mode!r})", _example())
  indices, mask, audio = _direct(start, num_frames, stride)
  frames = out["video"]["frames"].numpy()
  np.testing.assert_array_equal(frames[:, 0, 0, 0],
                                np.where(mask, indices, 0))
  np.testing.assert_array_equal(out["video"]["frame_mask"].numpy(), mask)
  np.testing.assert_array_equal(out["audio"].numpy(), audio)
  assert out["label"].numpy() == 3  # other features pass through


def test_sample_clip_random_start_covers_every_window_and_stays_aligned():
  starts = set()
  for seed in range(60):
    out = _run("sample_clip(4, 3, mode='random')", _example(), seed=(seed, 0))
    start = int(out["video"]["frames"][0, 0, 0, 0])
    starts.add(start)
    indices, mask, audio = _direct(start, 4, 3)
    np.testing.assert_array_equal(out["video"]["frames"][:, 0, 0, 0], indices)
    np.testing.assert_array_equal(out["audio"].numpy(), audio)
  assert starts == set(range(16 - 10 + 1))  # span (4 - 1) * 3 + 1 = 10


def test_sample_clip_pads_a_short_clip_with_masked_zero_frames():
  out = _run("sample_clip(8, 1, mode='random')", _example(num_frames=5))
  np.testing.assert_array_equal(out["video"]["frame_mask"].numpy(),
                                [True] * 5 + [False] * 3)
  np.testing.assert_array_equal(out["video"]["frames"][:, 0, 0, 0].numpy(),
                                [0, 1, 2, 3, 4, 0, 0, 0])
  audio = out["audio"].numpy()
  np.testing.assert_array_equal(audio[:5000], np.arange(5000))
  assert not audio[5000:].any() and audio.shape == (8000,)


def test_sample_clip_without_soundtrack_and_bad_arguments():
  example = _example()
  del example["audio"]
  out = _run("sample_clip(4, 2, mode='center')", example)
  assert "audio" not in out and out["video"]["frames"].shape == (4, 4, 4, 1)
  with pytest.raises(ValueError, match="mode must be one of"):
    builder.parse("sample_clip(4, mode='middle')")
  with pytest.raises(ValueError, match="not a whole number"):
    builder.parse("sample_clip(3, 1, frame_rate=7.0)")
  with pytest.raises(KeyError, match="no 'video' feature"):
    _run("sample_clip(4)", {"audio": tf.zeros([8000])})


@pytest.mark.parametrize("ms,shift", [(125, 1000), (-250, -2000), (0, 0)])
def test_shift_soundtrack_moves_samples_and_keeps_length(ms, shift):
  audio = np.arange(1, 16001, dtype=np.int32)
  out = _run(f"shift_soundtrack({ms})", {"audio": tf.constant(audio)})
  expected = np.zeros_like(audio)
  if shift >= 0:
    expected[shift:] = audio[:len(audio) - shift]
  else:
    expected[:shift] = audio[-shift:]
  np.testing.assert_array_equal(out["audio"].numpy(), expected)


def test_shift_then_sample_clip_compose_in_order():
  out = _run("shift_soundtrack(125)|sample_clip(4, 2, mode='start')",
             _example())
  np.testing.assert_array_equal(out["audio"].numpy()[:1000], np.zeros(1000))
  np.testing.assert_array_equal(out["audio"].numpy()[1000:2000],
                                np.arange(1000))


def _clip(seed=0, frames=3, size=6):
  rng = np.random.default_rng(seed)
  return {"frames": tf.constant(rng.uniform(0, 255, (frames, size, size, 1)),
                                tf.float32),
          "frame_mask": tf.constant([True] * frames)}


def test_video_random_crop_and_flip_are_the_same_on_every_frame():
  clip = _clip()
  base = clip["frames"].numpy()
  for seed in range(8):
    crop = _run("video_random_crop(4)", clip, seed=(seed, 1))["frames"].numpy()
    windows = [(t, l) for t in range(3) for l in range(3)
               if np.array_equal(crop, base[:, t:t + 4, l:l + 4])]
    assert len(windows) == 1, "one window shared by all frames"
  flips = {bool(np.array_equal(
      _run("video_random_flip", clip, seed=(s, 0))["frames"].numpy(),
      base[:, :, ::-1])) for s in range(16)}
  assert flips == {True, False}


def test_video_value_range_resize_and_center_crop():
  clip = _clip()
  out = _run("video_value_range(0, 1)|video_resize(12)|video_center_crop(8)",
             clip)
  frames = out["frames"].numpy()
  assert frames.shape == (3, 8, 8, 1) and frames.dtype == np.float32
  assert 0.0 <= frames.min() and frames.max() <= 1.0
  resized = tf.image.resize(clip["frames"] / 255.0, (12, 12)).numpy()
  np.testing.assert_allclose(frames, resized[:, 2:10, 2:10], atol=1e-6)
  np.testing.assert_array_equal(out["frame_mask"].numpy(), [True] * 3)
