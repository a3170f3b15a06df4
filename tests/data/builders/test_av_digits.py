"""Tests of the AvDigits TFDS builder, on fake data and on the real data."""

from pathlib import Path
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mmjax.data.builders import av_digits
from mmjax.data.builders import sources
from mmjax.data.builders import splits
from mmjax.data.errors import DataError

FAKE_SIZES = {"train": 125, "validation": 25, "test": 50}


@pytest.fixture(scope="module")
def fake_builder(shared_fake_manual_dir, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  return av_digits.get_builder(shared_fake_manual_dir, data_dir,
                               splits.SplitSpec())


def _read(builder, split, skip_image=False):
  decoders = {"image": tfds.decode.SkipDecoding()} if skip_image else None
  return list(tfds.as_numpy(builder.as_dataset(split=split,
                                               decoders=decoders)))


def test_fake_split_sizes(fake_builder, shared_fake_manual_dir):
  _, labels = sources.load_mnist(shared_fake_manual_dir)
  pairs = splits.make_pairs(sources.list_fsdd(shared_fake_manual_dir), labels,
                            splits.SplitSpec())
  for name, size in FAKE_SIZES.items():
    assert fake_builder.info.splits[name].num_examples == size
    assert len(pairs[name]) == size


@pytest.mark.parametrize("split", sorted(FAKE_SIZES))
def test_fake_examples_match_sources(fake_builder, shared_fake_manual_dir,
                                     split):
  images, labels = sources.load_mnist(shared_fake_manual_dir)
  recordings_dir = shared_fake_manual_dir / sources.FSDD_RECORDINGS
  examples = _read(fake_builder, split)
  assert len(examples) == FAKE_SIZES[split]
  for ex in examples:
    assert ex["image"].shape == (28, 28, 1) and ex["image"].dtype == np.uint8
    assert ex["audio"].ndim == 1 and ex["audio"].dtype == np.int16
    assert ex["label"].dtype == np.int64 and ex["image_id"].dtype == np.int64
    np.testing.assert_array_equal(ex["image"][:, :, 0],
                                  images[ex["image_id"]])
    recording = sources.parse_recording_name(ex["recording"].decode())
    assert ex["label"] == labels[ex["image_id"]] == recording.digit
    assert ex["speaker"].decode() == recording.speaker
    np.testing.assert_array_equal(
        ex["audio"], sources.read_wav(recordings_dir / recording.file_name))


def test_fake_image_ids_disjoint(fake_builder):
  ids = [int(ex["image_id"]) for split in FAKE_SIZES
         for ex in _read(fake_builder, split, skip_image=True)]
  assert sorted(ids) == list(range(200))


def test_second_get_builder_does_not_reprepare(fake_builder,
                                               shared_fake_manual_dir,
                                               monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("download_and_prepare called again")

  monkeypatch.setattr(av_digits.AvDigits, "download_and_prepare", fail)
  data_dir = Path(fake_builder.data_dir).parents[2]
  again = av_digits.get_builder(shared_fake_manual_dir, data_dir,
                                splits.SplitSpec())
  assert again.data_dir == fake_builder.data_dir
  assert again.info.splits["test"].num_examples == FAKE_SIZES["test"]


def test_config_dir_per_spec_and_manual_content(fake_builder,
                                                shared_fake_manual_dir):
  config = fake_builder.builder_config
  assert re.fullmatch(r"official_seed0_[0-9a-f]{8}", config.name)
  assert config.name in fake_builder.data_dir
  fingerprint = av_digits.fingerprint(shared_fake_manual_dir)
  names = {
      av_digits.config_name(splits.SplitSpec(), fingerprint),
      av_digits.config_name(splits.SplitSpec(seed=1), fingerprint),
      av_digits.config_name(splits.SplitSpec(test_speakers=("bob",)),
                            fingerprint),
      av_digits.config_name(splits.SplitSpec(), "0" * 16),
  }
  assert len(names) == 4
  assert av_digits.config_name(
      splits.SplitSpec(test_speakers=("bob", "alice")), fingerprint
  ).startswith("speakers-alice-bob_seed0_")
  for name in names:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)


def test_fingerprint_changes_with_content(fake_manual_dir, write_wav):
  before = av_digits.fingerprint(fake_manual_dir)
  assert re.fullmatch(r"[0-9a-f]{16}", before)
  assert av_digits.fingerprint(fake_manual_dir) == before
  write_wav(fake_manual_dir / sources.FSDD_RECORDINGS / "1_carol_0.wav",
            np.ones(10, np.int16))
  assert av_digits.fingerprint(fake_manual_dir) != before


def test_missing_manual_dir_lists_missing_paths(tmp_path):
  missing = tmp_path / "no_such_dir"
  with pytest.raises(DataError) as e:
    av_digits.get_builder(missing, tmp_path / "tfds", splits.SplitSpec())
  for name in (sources.MNIST_IMAGES, sources.MNIST_LABELS,
               sources.FSDD_RECORDINGS):
    assert str(missing / name) in str(e.value)
  assert not (tmp_path / "tfds").exists()


def test_fingerprint_mismatch_is_refused(shared_fake_manual_dir, tmp_path):
  config = av_digits.AvDigitsConfig.from_spec(splits.SplitSpec(), "f" * 16)
  builder = av_digits.AvDigits(data_dir=str(tmp_path), config=config)
  with pytest.raises(DataError, match="fingerprint"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(shared_fake_manual_dir), try_download_gcs=False))


def test_real_preparation(real_manual_dir, prepared_data_dir):
  builder = av_digits.get_builder(real_manual_dir, prepared_data_dir,
                                  splits.SplitSpec())
  sizes = {name: builder.info.splits[name].num_examples
           for name in splits.SPLITS}
  assert sizes == {"train": 5000, "validation": 1000, "test": 2000}
  ids, recordings = {}, {}
  for name in splits.SPLITS:
    examples = _read(builder, name, skip_image=True)
    ids[name] = {int(ex["image_id"]) for ex in examples}
    recordings[name] = {ex["recording"] for ex in examples}
    assert len(ids[name]) == sizes[name]
  assert sorted(set.union(*ids.values())) == list(range(8000))
  for a, b in (("train", "validation"), ("train", "test"),
               ("validation", "test")):
    assert not recordings[a] & recordings[b]
  assert len(ids["test"]) >= 1000
