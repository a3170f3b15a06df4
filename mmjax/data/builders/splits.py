"""Deterministic train/validation/test splits and image-recording pairing.

AV-MNIST style pairing (Vielzeuf et al. 2018, "CentralNet", paired MNIST with
TIDIGITS; here FSDD): each MNIST image is paired with one FSDD recording of the
same digit. Images and recordings are split separately, then paired within
each split, so a test recording is never paired with a training image or the
other way round.

Pure numpy; given a `SplitSpec` (and its seed) the result is fully determined.
"""

import dataclasses
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from mmjax.data.builders.sources import NUM_CLASSES
from mmjax.data.builders.sources import Recording
from mmjax.data.errors import DataError

SPLITS = ("train", "validation", "test")

# Independent random streams derived from the seed, one per use.
_STREAM_IMAGE_SPLIT = 0
_STREAM_IMAGE_ORDER = 1
_STREAM_RECORDING_ORDER = 2


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """How to split recordings and images and pair them.

  Attributes:
    seed: seeds the image split and the pairing (non-negative).
    test_speakers: empty for the official FSDD split (by take index); else
      the speaker-independent protocol: all recordings of these speakers are
      the test set.
    validation_indices: take indices of the validation recordings (of the
      non-test speakers in the speaker protocol); ignored when
      `validation_speakers` is given.
    test_indices: take indices of the test recordings in the official split
      (FSDD's authors use 0-4); ignored when `test_speakers` is given.
    image_fractions: (train, validation, test) fractions of the images of
      each digit; non-negative, summing to 1.
    validation_speakers: empty, or all recordings of these speakers are the
      validation set (none of them trains): model selection on speakers the
      model never heard, as the test speakers are.

  Raises:
    ValueError: on construction, for a negative seed, fractions that are not
      3 non-negative numbers summing to 1, overlapping validation and test
      indices in the official split, or a speaker both in
      `validation_speakers` and `test_speakers`.
  """
  seed: int = 0
  test_speakers: Tuple[str, ...] = ()
  validation_indices: Tuple[int, ...] = (5, 6, 7, 8, 9)
  test_indices: Tuple[int, ...] = (0, 1, 2, 3, 4)
  image_fractions: Tuple[float, float, float] = (0.625, 0.125, 0.25)
  validation_speakers: Tuple[str, ...] = ()

  def __post_init__(self):
    # Lists (e.g. from a ConfigDict) become tuples, so specs hash and compare.
    for name in ("test_speakers", "validation_speakers"):
      if isinstance(getattr(self, name), str):
        object.__setattr__(self, name, (getattr(self, name),))
    for name in ("test_speakers", "validation_indices", "test_indices",
                 "image_fractions", "validation_speakers"):
      object.__setattr__(self, name, tuple(getattr(self, name)))
    if self.seed < 0:
      raise ValueError(f"SplitSpec.seed must be >= 0, got {self.seed}")
    fractions = np.asarray(self.image_fractions, dtype=np.float64)
    if (fractions.shape != (3,) or (fractions < 0).any() or
        not np.isclose(fractions.sum(), 1.0)):
      raise ValueError("SplitSpec.image_fractions must be 3 non-negative "
                       f"numbers summing to 1, got {self.image_fractions}")
    overlap = set(self.validation_indices) & set(self.test_indices)
    if not self.test_speakers and not self.validation_speakers and overlap:
      raise ValueError("SplitSpec: validation_indices and test_indices "
                       f"overlap: {sorted(overlap)}")
    both = set(self.validation_speakers) & set(self.test_speakers)
    if both:
      raise ValueError(f"SplitSpec: speaker(s) {sorted(both)} in both "
                       "validation_speakers and test_speakers")

  @property
  def protocol(self) -> str:
    """'official' (split by take index) or 'speakers' (held-out speakers)."""
    return "speakers" if self.test_speakers else "official"


class Pair(NamedTuple):
  """One example: an MNIST image and an FSDD recording of the same digit.

  Attributes:
    image_index: index of the image in the MNIST file (0-based).
    recording: the recording's file name, `{digit}_{speaker}_{index}.wav`.
    speaker: the recording's speaker.
    label: the digit, 0-9 (of both the image and the recording).
  """
  image_index: int
  recording: str
  speaker: str
  label: int


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
  return np.random.default_rng([seed, stream, *keys])


def _recording_split(recording: Recording, spec: SplitSpec) -> str:
  if spec.test_speakers:
    if recording.speaker in spec.test_speakers:
      return "test"
  elif recording.index in spec.test_indices:
    return "test"
  if spec.validation_speakers:
    return ("validation" if recording.speaker in spec.validation_speakers
            else "train")
  if recording.index in spec.validation_indices:
    return "validation"
  return "train"


def split_recordings(recordings: Sequence[Recording],
                     spec: SplitSpec) -> Dict[str, List[Recording]]:
  """Splits recordings by take index (official) or by speaker.

  Official FSDD split (`spec.test_speakers` empty): index in
  `spec.test_indices` -> test, in `spec.validation_indices` -> validation,
  else train. Speaker protocol: every recording of `spec.test_speakers` ->
  test; of the other speakers, index in `spec.validation_indices` ->
  validation, else train. With `spec.validation_speakers`, every (non-test)
  recording of those speakers -> validation and no other.

  Args:
    recordings: the FSDD listing (see `sources.list_fsdd`).
    spec: the split specification.

  Returns:
    {split name: recordings in input order}, for each name in `SPLITS`.

  Raises:
    DataError: if a test speaker is not among the recordings' speakers (the
      message lists the known speakers).
  """
  known = sorted({r.speaker for r in recordings})
  for kind in ("test", "validation"):
    unknown = sorted(set(getattr(spec, f"{kind}_speakers")) - set(known))
    if unknown:
      raise DataError(f"Unknown {kind} speaker(s) {unknown}; the recordings "
                      f"have speakers {known}.")
  result = {name: [] for name in SPLITS}
  for recording in recordings:
    result[_recording_split(recording, spec)].append(recording)
  return result


def _stratified_keys(labels: np.ndarray, seed: int) -> np.ndarray:
  """Per image, (rank + 0.5) / n within its digit, in a seeded random order."""
  keys = np.empty(len(labels), dtype=np.float64)
  for digit in np.unique(labels):
    indices = np.flatnonzero(labels == digit)
    shuffled = _rng(seed, _STREAM_IMAGE_SPLIT, int(digit)).permutation(indices)
    keys[shuffled] = (np.arange(len(indices)) + 0.5) / len(indices)
  return keys


def split_images(labels: np.ndarray,
                 spec: SplitSpec) -> Dict[str, np.ndarray]:
  """Stratified, seeded split of the images by `spec.image_fractions`.

  Systematic stratified sampling: the images of each digit get a seeded
  random rank r in 0..n_d-1 and the key (r + 0.5) / n_d; all images, sorted by
  key (then label), are cut at round(N * cumulative fractions). So the splits
  are disjoint and cover all images, their sizes are exactly the rounded
  fractions of N (5000/1000/2000 of 8000 for the defaults), and each digit's
  count in a split is within about 1 of n_d * fraction (the counts depend on
  the class counts only; the seed picks which images).

  Args:
    labels: int [N], the image labels.
    spec: the split specification.

  Returns:
    {split name: int64 [n_split] sorted image indices}, for each in `SPLITS`.
  """
  labels = np.asarray(labels)
  order = np.lexsort((labels, _stratified_keys(labels, spec.seed)))
  cuts = np.floor(np.cumsum(spec.image_fractions)[:-1] * len(labels) + 0.5)
  parts = np.split(order, cuts.astype(np.int64))
  return {name: np.sort(part).astype(np.int64)
          for name, part in zip(SPLITS, parts)}


def _pair_digit(split_index: int, digit: int, images: np.ndarray,
                recordings: List[Recording], spec: SplitSpec) -> List[Pair]:
  """Pairs the shuffled images with the shuffled recordings, cycling."""
  images = _rng(spec.seed, _STREAM_IMAGE_ORDER, split_index,
                digit).permutation(images)
  order = _rng(spec.seed, _STREAM_RECORDING_ORDER, split_index,
               digit).permutation(len(recordings))
  pairs = []
  for i, image in enumerate(images):
    recording = recordings[order[i % len(order)]]
    pairs.append(Pair(int(image), recording.file_name, recording.speaker,
                      digit))
  return pairs


def make_pairs(recordings: Sequence[Recording], image_labels: np.ndarray,
               spec: SplitSpec) -> Dict[str, List[Pair]]:
  """Splits images and recordings, then pairs them within each split.

  Within a split, per digit, the images (seeded shuffle) are paired in turn
  with the recordings of that digit (seeded shuffle), cycling through the
  recordings, so each recording is used equally often (+-1) and each image
  exactly once: the number of pairs equals the number of images in the split.
  The recording listing's order does not matter (it is sorted first).

  Args:
    recordings: the FSDD listing (see `sources.list_fsdd`).
    image_labels: int [N], the MNIST labels 0-9.
    spec: the split specification; its seed determines the result.

  Returns:
    {split name: pairs sorted by image index}, for each name in `SPLITS`.

  Raises:
    DataError: for an unknown test speaker, or if a split has images of a
      digit but no recordings of it.
  """
  recordings = sorted(recordings, key=lambda r: r.file_name)
  recording_splits = split_recordings(recordings, spec)
  image_splits = split_images(image_labels, spec)
  labels = np.asarray(image_labels)
  result = {}
  for split_index, name in enumerate(SPLITS):
    pairs = []
    for digit in range(NUM_CLASSES):
      images = image_splits[name][labels[image_splits[name]] == digit]
      digit_recordings = [
          r for r in recording_splits[name] if r.digit == digit]
      if images.size and not digit_recordings:
        raise DataError(
            f"Split {name!r} has {images.size} images of digit {digit} but "
            f"no recordings of it (split spec: {spec}).")
      pairs += _pair_digit(split_index, digit, images, digit_recordings, spec)
    result[name] = sorted(pairs)
  return result
