"""Tests of av_digit_clips: the pure clip logic, and the builder on fake and
real data."""

import collections
from pathlib import Path
import re

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from mmjax.data.builders import av_digit_clips as clips_lib
from mmjax.data.builders import av_digits
from mmjax.data.builders import registry as datasets
from mmjax.data.builders import sources
from mmjax.data.builders import splits
from mmjax.data.errors import DataError
from tests.conftest import CLIPS_TINY

REAL_SIZES = {"train": 2500, "validation": 500, "test": 1000}
FAKE_SIZES = {"train": 62, "validation": 12, "test": 25}
SLOT = clips_lib.SAMPLES_PER_SLOT


def _read(builder, split, skip_video=False):
  decoders = {"video": tfds.decode.SkipDecoding()} if skip_video else None
  return list(tfds.as_numpy(builder.as_dataset(split=split,
                                               decoders=decoders)))


def _synthetic_pairs(n, seed=0):
  labels = np.random.default_rng(seed).integers(0, 10, n)
  return [splits.Pair(i, f"{d}_s_{i}.wav", "s", int(d))
          for i, d in enumerate(labels)]


@pytest.fixture(scope="module")
def real_builder(real_manual_dir, prepared_clips_dir):
  return clips_lib.get_builder(real_manual_dir, prepared_clips_dir,
                               splits.SplitSpec(), **CLIPS_TINY)


@pytest.fixture(scope="module")
def fake_sequence_dir(shared_fake_manual_dir, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds_fake_clips")
  clips_lib.get_builder(shared_fake_manual_dir, data_dir, splits.SplitSpec(),
                        task="sequence", clips_per_pair=1)
  return data_dir


@pytest.mark.parametrize("kwargs, name", [
    ({"task": "order"}, "task"),
    ({"clips_per_pair": 0}, "clips_per_pair"),
    ({"clips_per_pair": 1.5}, "clips_per_pair"),
    ({"swap_fraction": 1.5}, "swap_fraction"),
])
def test_bad_settings_raise_value_error(kwargs, name, shared_fake_manual_dir,
                                        tmp_path):
  with pytest.raises(ValueError, match=name):
    clips_lib.get_builder(shared_fake_manual_dir, tmp_path,
                          splits.SplitSpec(), **kwargs)
  with pytest.raises(ValueError, match=name):
    clips_lib.draw_clips(_synthetic_pairs(4), 0, "train", **kwargs)
  assert not (tmp_path / "av_digit_clips").exists()


def test_missing_manual_dir_lists_missing_paths(tmp_path):
  missing = tmp_path / "no_such_dir"
  with pytest.raises(DataError) as e:
    clips_lib.get_builder(missing, tmp_path / "tfds", splits.SplitSpec())
  for name in (sources.MNIST_IMAGES, sources.MNIST_LABELS,
               sources.FSDD_RECORDINGS):
    assert str(missing / name) in str(e.value)
  assert not (tmp_path / "tfds").exists()


def test_sync_negatives_have_the_marginals_of_positives():
  clips = clips_lib.draw_clips(_synthetic_pairs(20000), 3, "train", "sync",
                               clips_per_pair=2, swap_fraction=0.5)
  assert len(clips) == 20000
  positives = [c for c in clips if c.synchronized]
  negatives = [c for c in clips if not c.synchronized]
  assert abs(len(positives) / len(clips) - 0.5) < 0.02
  for group in (positives, negatives):
    for slots_of in (lambda c: c.audio_slots, lambda c: c.video_slots):
      counts = collections.Counter(slots_of(c) for c in group)
      assert set(counts) == set(clips_lib.SLOT_PAIRS)
      shares = np.array(list(counts.values())) / len(group)
      assert np.abs(shares - 1 / 6).max() < 0.02, counts
    ascending = np.mean([c.audio[0].label < c.audio[1].label for c in group])
    descending = np.mean([c.audio[0].label > c.audio[1].label for c in group])
    assert abs(ascending - descending) < 0.02
  for c in positives:
    assert c.negative == "" and c.audio == c.video
    assert c.audio_slots == c.video_slots
  kinds = collections.Counter(c.negative for c in negatives)
  distinct = sum(c.video[0].label != c.video[1].label for c in negatives)
  assert abs(kinds["swap"] / distinct - 0.5) < 0.03
  for c in negatives:
    if c.negative == "swap":
      assert c.audio_slots == c.video_slots
      assert c.audio == c.video[::-1] and c.video[0].label != c.video[1].label
    else:
      assert c.negative == "shift" and c.audio == c.video
      assert c.audio_slots != c.video_slots


def test_schedule_rounds_and_determinism():
  pairs = _synthetic_pairs(101)
  clips = clips_lib.draw_clips(pairs, 0, "train", "sequence", 3)
  assert len(clips) == 150 and [c.key for c in clips] == list(range(150))
  for r in range(3):
    used = [p.image_index for c in clips[50 * r:50 * (r + 1)] for p in c.video]
    assert len(set(used)) == 100
  assert all(c.synchronized and c.audio == c.video and
             c.audio_slots == c.video_slots for c in clips)
  assert clips == clips_lib.draw_clips(pairs, 0, "train", "sequence", 3)
  assert clips != clips_lib.draw_clips(pairs, 0, "test", "sequence", 3)
  assert clips != clips_lib.draw_clips(pairs, 1, "train", "sequence", 3)
  for c in clips:
    assert c.video_slots[0] < c.video_slots[1]
    assert all(0 <= v <= clips_lib.POSITION_LIMIT
               for start in c.starts for v in start)
    assert all(2 <= np.hypot(*v) <= 5 for v in c.velocities)


def test_bounce_reflects_at_the_borders():
  positions = clips_lib.bounce((35.0, 1.0), (3.0, -4.0), num_frames=4)
  np.testing.assert_allclose(positions,
                             [[35, 1], [34, 3], [31, 7], [28, 11]])
  rng = np.random.default_rng(0)
  for _ in range(100):
    path = clips_lib.bounce(rng.uniform(0, 36, 2), rng.uniform(-5, 5, 2), 50)
    assert path.min() >= 0 and path.max() <= clips_lib.POSITION_LIMIT


def test_render_video_draws_each_digit_in_its_slot_only():
  images = [np.full((28, 28), 7, np.uint8), np.full((28, 28), 9, np.uint8)]
  trajectories = [clips_lib.bounce((0, 0), (2, 3)),
                  clips_lib.bounce((36, 36), (-4, 0))]
  video = clips_lib.render_video(images, (1, 3), trajectories)
  assert video.shape == (16, 64, 64, 1) and video.dtype == np.uint8
  assert not video[0:4].any() and not video[8:12].any()
  for image, slot, path in zip(images, (1, 3), trajectories):
    for t, (y, x) in enumerate(np.rint(path).astype(int)):
      frame = video[4 * slot + t, :, :, 0]
      np.testing.assert_array_equal(frame[y:y + 28, x:x + 28], image)
      assert frame.sum() == image.sum()


def test_fit_to_slot_and_mix_soundtrack():
  long = np.arange(5001, dtype=np.int16)
  assert clips_lib.fit_to_slot(long, 0.7)[0] == 0
  np.testing.assert_array_equal(clips_lib.fit_to_slot(long, 0.7)[1],
                                long[500:4500])
  short = np.ones(1000, np.int16)
  assert clips_lib.fit_to_slot(short, 0.0)[0] == 0
  assert clips_lib.fit_to_slot(short, 0.99999)[0] == 3000
  audio, starts = clips_lib.mix_soundtrack([short, long], (2, 0), (0.5, 0.1))
  assert audio.shape == (16000,) and audio.dtype == np.int16
  assert starts.tolist() == [8000 + 1500, 0]
  np.testing.assert_array_equal(audio[:4000], long[500:4500])
  assert audio[9500:10500].tolist() == [1] * 1000
  assert not audio[4000:9500].any() and not audio[10500:].any()


def test_config_names(shared_fake_manual_dir, fake_sequence_dir):
  fingerprint = av_digits.fingerprint(shared_fake_manual_dir)
  spec = splits.SplitSpec()
  settings = [{}, {"task": "sync"}, {"clips_per_pair": 1},
              {"swap_fraction": 0.25}, {"task": "sync", "swap_fraction": 0}]
  names = {clips_lib.config_name(spec, fingerprint, **s) for s in settings}
  names.add(clips_lib.config_name(splits.SplitSpec(seed=1), fingerprint))
  names.add(clips_lib.config_name(spec, "0" * 16))
  names.add(av_digits.config_name(spec, fingerprint))
  assert len(names) == len(settings) + 3
  for name in names:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
  assert re.fullmatch(
      r"speakers-theo_seed2_[0-9a-f]{8}", clips_lib.config_name(
          splits.SplitSpec(seed=2, test_speakers=("theo",)), fingerprint,
          task="sync")[len("sync_"):])
  builder = clips_lib.get_builder(shared_fake_manual_dir, fake_sequence_dir,
                                  spec, task="sequence", clips_per_pair=1)
  assert re.fullmatch(r"sequence_official_seed0_[0-9a-f]{8}",
                      builder.builder_config.name)
  assert builder.builder_config.name in builder.data_dir


def test_fake_sequence_task_and_determinism(shared_fake_manual_dir,
                                            fake_sequence_dir, tmp_path):
  builder = clips_lib.get_builder(shared_fake_manual_dir, fake_sequence_dir,
                                  splits.SplitSpec(), task="sequence",
                                  clips_per_pair=1)
  assert builder.info.features["label"].num_classes == 100
  again = clips_lib.get_builder(shared_fake_manual_dir, tmp_path,
                                splits.SplitSpec(), task="sequence",
                                clips_per_pair=1)
  for split, size in FAKE_SIZES.items():
    first, second = _read(builder, split), _read(again, split)
    assert len(first) == len(second) == size
    first.sort(key=lambda ex: tuple(ex["image_ids"]))
    second.sort(key=lambda ex: tuple(ex["image_ids"]))
    for a, b in zip(first, second):
      assert a["label"] == a["sequence"] == a["spoken_sequence"]
      assert a["synchronized"] == 1 and a["negative"] == b""
      np.testing.assert_array_equal(a["audio_slots"], a["video_slots"])
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_registry_builds_av_digit_clips(shared_fake_manual_dir,
                                        fake_sequence_dir):
  config = ml_collections.ConfigDict({
      "name": "av_digit_clips", "manual_dir": str(shared_fake_manual_dir),
      "data_dir": str(fake_sequence_dir), "task": "sequence",
      "clips_per_pair": 1})
  builder = datasets.get_builder(config)
  assert builder.info.splits["test"].num_examples == FAKE_SIZES["test"]
  config.task = "order"
  with pytest.raises(ValueError, match="task"):
    datasets.get_builder(config)


def test_real_splits_are_disjoint_and_follow_the_schedule(real_builder,
                                                          real_manual_dir):
  _, labels = sources.load_mnist(real_manual_dir)
  pairs = splits.make_pairs(sources.list_fsdd(real_manual_dir), labels,
                            splits.SplitSpec())
  ids, recordings = {}, {}
  for split, size in REAL_SIZES.items():
    examples = _read(real_builder, split, skip_video=True)
    assert len(examples) == size
    ids[split] = {int(i) for ex in examples for i in ex["image_ids"]}
    recordings[split] = {r for ex in examples for r in ex["recordings"]}
    assert len(ids[split]) == 2 * size
    expected = {
        (tuple(p.image_index for p in c.video), c.video_slots, c.audio_slots,
         tuple(p.recording.encode() for p in c.audio))
        for c in clips_lib.draw_clips(pairs[split], 0, split, **CLIPS_TINY)}
    stored = {(tuple(ex["image_ids"].tolist()), tuple(ex["video_slots"]),
               tuple(ex["audio_slots"]), tuple(ex["recordings"]))
              for ex in examples}
    assert stored == expected
    synchronized = np.mean([ex["synchronized"] for ex in examples])
    assert 0.4 < synchronized < 0.6
  for a, b in (("train", "validation"), ("train", "test"),
               ("validation", "test")):
    assert not ids[a] & ids[b]
    assert not recordings[a] & recordings[b]


def _check_video(video, images, image_ids, video_slots):
  frames = video[..., 0]
  shown = {4 * s + t for s in video_slots for t in range(4)}
  assert not frames[sorted(set(range(16)) - shown)].any()
  for image_id, slot in zip(image_ids, video_slots):
    image = images[image_id]
    rows, cols = np.nonzero(image)
    for frame in frames[4 * slot:4 * slot + 4]:
      assert frame.max() > 0
      frame_rows, frame_cols = np.nonzero(frame)
      y, x = frame_rows.min() - rows.min(), frame_cols.min() - cols.min()
      assert 0 <= y <= 36 and 0 <= x <= 36
      np.testing.assert_array_equal(frame[y:y + 28, x:x + 28], image)
      assert int(frame.sum()) == int(image.sum())


def _check_audio(audio, recordings_dir, recordings, audio_slots, starts):
  covered = np.zeros(16000, bool)
  for name, slot, start in zip(recordings, audio_slots, starts):
    wav = sources.read_wav(recordings_dir / name.decode())
    if len(wav) > SLOT:
      front = (len(wav) - SLOT) // 2
      wav = wav[front:front + SLOT]
    assert slot * SLOT <= start and start + len(wav) <= (slot + 1) * SLOT
    np.testing.assert_array_equal(audio[start:start + len(wav)], wav)
    covered[start:start + len(wav)] = True
  assert not audio[~covered].any()


def test_real_examples_match_sources(real_builder, real_manual_dir):
  images, labels = sources.load_mnist(real_manual_dir)
  recordings_dir = real_manual_dir / sources.FSDD_RECORDINGS
  examples = _read(real_builder, "test")[:300]
  kinds = collections.Counter(ex["negative"] for ex in examples)
  assert kinds[b""] and kinds[b"swap"] and kinds[b"shift"]
  for ex in examples:
    assert ex["video"].shape == (16, 64, 64, 1)
    assert ex["video"].dtype == np.uint8
    assert ex["audio"].shape == (16000,) and ex["audio"].dtype == np.int16
    d1, d2 = labels[ex["image_ids"]]
    s1, s2 = (sources.parse_recording_name(r.decode()).digit
              for r in ex["recordings"])
    assert ex["sequence"] == 10 * d1 + d2
    assert ex["spoken_sequence"] == 10 * s1 + s2
    assert ex["label"] == ex["synchronized"]
    assert [s.decode() for s in ex["speakers"]] == [
        sources.parse_recording_name(r.decode()).speaker
        for r in ex["recordings"]]
    same_slots = (ex["audio_slots"] == ex["video_slots"]).all()
    if ex["negative"] == b"":
      assert ex["synchronized"] == 1 and same_slots
      assert ex["spoken_sequence"] == ex["sequence"]
    elif ex["negative"] == b"swap":
      assert ex["synchronized"] == 0 and same_slots and d1 != d2
      assert (s1, s2) == (d2, d1)
    else:
      assert ex["negative"] == b"shift" and ex["synchronized"] == 0
      assert not same_slots and (s1, s2) == (d1, d2)
    _check_video(ex["video"], images, ex["image_ids"], ex["video_slots"])
    _check_audio(ex["audio"], recordings_dir, ex["recordings"],
                 ex["audio_slots"], ex["audio_starts"])


def test_second_get_builder_does_not_reprepare(real_builder, real_manual_dir,
                                               monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("download_and_prepare called again")

  monkeypatch.setattr(clips_lib.AvDigitClips, "download_and_prepare", fail)
  data_dir = Path(real_builder.data_dir).parents[2]
  again = clips_lib.get_builder(real_manual_dir, data_dir,
                                splits.SplitSpec(), **CLIPS_TINY)
  assert again.data_dir == real_builder.data_dir
  assert again.info.features["label"].num_classes == 2
