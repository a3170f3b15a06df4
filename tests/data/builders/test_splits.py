"""Tests of mmjax.data.builders.splits on the real FSDD listing and MNIST
labels.

Fast: nothing is decoded but the MNIST IDX files.
"""

import collections

import numpy as np
import pytest

from mmjax.data.builders import sources
from mmjax.data.builders import splits
from mmjax.data.errors import DataError

SPECS = {
    "official": splits.SplitSpec(),
    "speakers": splits.SplitSpec(test_speakers=("theo",)),
}


@pytest.fixture(scope="module")
def real(real_manual_dir):
  _, labels = sources.load_mnist(real_manual_dir)
  return sources.list_fsdd(real_manual_dir), labels


@pytest.fixture(scope="module", params=sorted(SPECS))
def spec_and_pairs(request, real):
  spec = SPECS[request.param]
  return spec, splits.make_pairs(*real, spec)


def test_images_disjoint_and_cover_all(spec_and_pairs, real):
  _, pairs = spec_and_pairs
  image_ids = [p.image_index for split in pairs.values() for p in split]
  assert sorted(image_ids) == list(range(len(real[1])))


def test_recordings_disjoint(spec_and_pairs):
  _, pairs = spec_and_pairs
  used = {name: {p.recording for p in split} for name, split in pairs.items()}
  assert not used["train"] & used["validation"]
  assert not used["train"] & used["test"]
  assert not used["validation"] & used["test"]


def test_labels_agree(spec_and_pairs, real):
  _, pairs = spec_and_pairs
  labels = real[1]
  for split in pairs.values():
    for pair in split:
      recording = sources.parse_recording_name(pair.recording)
      assert labels[pair.image_index] == pair.label == recording.digit
      assert recording.speaker == pair.speaker


def test_recordings_used_evenly(spec_and_pairs):
  _, pairs = spec_and_pairs
  for split in pairs.values():
    for digit in range(10):
      counts = collections.Counter(
          p.recording for p in split if p.label == digit)
      assert max(counts.values()) - min(counts.values()) <= 1


def test_image_split_stratified(spec_and_pairs, real):
  spec, pairs = spec_and_pairs
  class_counts = np.bincount(real[1], minlength=10)
  for name, fraction in zip(splits.SPLITS, spec.image_fractions):
    counts = np.bincount([p.label for p in pairs[name]], minlength=10)
    assert np.all(np.abs(counts - class_counts * fraction) <= 1)


def test_official_split_sizes_and_indices(real):
  pairs = splits.make_pairs(*real, SPECS["official"])
  assert {k: len(v) for k, v in pairs.items()} == {
      "train": 5000, "validation": 1000, "test": 2000}
  recordings = real[0]
  expected = {
      "test": {r.file_name for r in recordings if r.index <= 4},
      "validation": {r.file_name for r in recordings if 5 <= r.index <= 9},
      "train": {r.file_name for r in recordings if r.index >= 10},
  }
  for name, split in pairs.items():
    assert {p.recording for p in split} == expected[name]


def test_speaker_split(real):
  pairs = splits.make_pairs(*real, SPECS["speakers"])
  assert len(pairs["test"]) >= 1000
  assert {p.speaker for p in pairs["test"]} == {"theo"}
  for name in ("train", "validation"):
    assert "theo" not in {p.speaker for p in pairs[name]}
  indices = {sources.parse_recording_name(p.recording).index
             for p in pairs["validation"]}
  assert indices == set(range(5, 10))


def test_validation_speaker_split(real):
  spec = splits.SplitSpec(test_speakers=("theo",), validation_speakers="george")
  recordings = splits.split_recordings(real[0], spec)
  george = [r for r in real[0] if r.speaker == "george"]
  # Every take of george validates (validation_indices is ignored), and
  # only george; the other three speakers train on all their takes.
  assert sorted(recordings["validation"]) == sorted(george)
  assert {r.speaker for r in recordings["train"]} == {
      "jackson", "nicolas", "yweweler"}
  assert {r.index for r in recordings["train"]} == set(range(50))
  pairs = splits.make_pairs(*real, spec)
  assert {p.speaker for p in pairs["validation"]} == {"george"}


def test_validation_speakers_leave_the_official_names_alone():
  from mmjax.data.builders import av_digits  # pylint: disable=g-import-not-at-top
  spec = splits.SplitSpec(test_speakers=("theo",))
  with_val = splits.SplitSpec(test_speakers=("theo",),
                              validation_speakers=("george",))
  assert "validation_speakers" not in av_digits._canonical_spec(spec)  # pylint: disable=protected-access
  assert (av_digits.config_name(spec, "f") !=
          av_digits.config_name(with_val, "f"))


def test_unknown_validation_speaker(real):
  with pytest.raises(DataError, match="validation speaker.*zoe"):
    splits.make_pairs(*real, splits.SplitSpec(validation_speakers=("zoe",)))


def test_deterministic_per_seed(real):
  first = splits.make_pairs(*real, splits.SplitSpec(seed=3))
  again = splits.make_pairs(*real, splits.SplitSpec(seed=3))
  other = splits.make_pairs(*real, splits.SplitSpec(seed=4))
  assert first == again
  assert first["train"] != other["train"]
  assert first["test"] != other["test"]


def test_listing_order_does_not_matter(real):
  recordings, labels = real
  spec = splits.SplitSpec(seed=1)
  assert (splits.make_pairs(recordings[::-1], labels, spec) ==
          splits.make_pairs(recordings, labels, spec))


def test_unknown_speaker_lists_known_ones(real):
  with pytest.raises(DataError, match="george") as e:
    splits.make_pairs(*real, splits.SplitSpec(test_speakers=("zoe",)))
  assert "zoe" in str(e.value) and "yweweler" in str(e.value)


def test_split_without_recordings_of_a_digit(real):
  recordings = [r for r in real[0] if not (r.digit == 3 and r.index <= 4)]
  with pytest.raises(DataError, match="'test'.*digit 3"):
    splits.make_pairs(recordings, real[1], splits.SplitSpec())


@pytest.mark.parametrize("kwargs", [
    {"image_fractions": (0.5, 0.5, 0.5)},
    {"image_fractions": (1.2, -0.1, -0.1)},
    {"seed": -1},
    {"validation_indices": (4, 5)},
    {"test_speakers": ("theo",), "validation_speakers": ("theo",)},
])
def test_invalid_spec(kwargs):
  with pytest.raises(ValueError):
    splits.SplitSpec(**kwargs)


def test_spec_normalises_sequences():
  spec = splits.SplitSpec(test_speakers="theo", validation_indices=[5, 6])
  assert spec.test_speakers == ("theo",)
  assert spec.validation_indices == (5, 6)
  assert spec.protocol == "speakers"
