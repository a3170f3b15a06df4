"""AV digits: MNIST images paired with FSDD spoken digits, as a TFDS builder.

AV-MNIST style (Vielzeuf et al. 2018, "CentralNet"): each example is one MNIST
image and one Free Spoken Digit Dataset recording of the same digit, paired
deterministically by `mmjax.data.builders.splits` (never across splits). The
raw files are read from a manual directory (see `sources.LAYOUT`); nothing
is downloaded.

Typical use:

    builder = get_builder(manual_dir=None, data_dir=None, spec=SplitSpec())
    ds = builder.as_dataset(split="train")

Each spec (seed, protocol, indices, fractions) and each manual directory's
content is prepared into its own TFDS config directory, named e.g.
`official_seed0_1a2b3c4d` or `speakers-theo_seed0_5e6f7a8b`.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path
import re
from typing import Dict, Iterator, List, Optional, Tuple

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from mmjax.data.builders import sources
from mmjax.data.builders.base import LocalFilesBuilder
from mmjax.data.builders.base import PathLike
from mmjax.data.builders.base import prepare_once
from mmjax.data.builders.base import resolve_data_dir
from mmjax.data.builders.base import resolve_manual_dir
from mmjax.data.builders.registry import DATASETS
from mmjax.data.builders.splits import make_pairs
from mmjax.data.builders.splits import Pair
from mmjax.data.builders.splits import SplitSpec
from mmjax.data.errors import DataError

CITATION = """\
@misc{fsdd,
  author = {Zohar Jackson and C{\\'e}sar Souza and Jason Flaks and Yuxin Pan
            and Hereman Nicolas and Adhish Thite},
  title = {Jakobovski/free-spoken-digit-dataset: v1.0.9},
  year = {2018},
  url = {https://github.com/Jakobovski/free-spoken-digit-dataset},
}
@article{lecun1998mnist,
  author = {Yann LeCun and L{\\'e}on Bottou and Yoshua Bengio and
            Patrick Haffner},
  title = {Gradient-based learning applied to document recognition},
  journal = {Proceedings of the IEEE},
  volume = {86}, number = {11}, pages = {2278--2324}, year = {1998},
}
@inproceedings{vielzeuf2018centralnet,
  author = {Valentin Vielzeuf and Alexis Lechervy and St{\\'e}phane Pateux and
            Fr{\\'e}d{\\'e}ric Jurie},
  title = {CentralNet: a Multilayer Approach for Multimodal Fusion},
  booktitle = {ECCV Workshops}, year = {2018},
}
"""


def _fingerprint_files(manual_dir: Path) -> List[str]:
  recordings = sorted(
      p.name for p in (manual_dir / sources.FSDD_RECORDINGS).glob("*.wav"))
  return [sources.MNIST_IMAGES, sources.MNIST_LABELS] + [
      f"{sources.FSDD_RECORDINGS}/{name}" for name in recordings]


def fingerprint(manual_dir: PathLike) -> str:
  """Short content fingerprint of a manual directory (stat only, no reads).

  sha256 over the relative path and size in bytes of the two MNIST files and
  of every fsdd/recordings/*.wav, in sorted order. Changing, adding or
  removing a file (other than by an edit keeping its size) changes it.

  Args:
    manual_dir: the manual directory.

  Returns:
    16 lowercase hex characters.

  Raises:
    DataError: from `sources.check_manual_dir`, if files are missing.
  """
  root = Path(manual_dir)
  sources.check_manual_dir(root)
  digest = hashlib.sha256()
  for name in _fingerprint_files(root):
    digest.update(f"{name}\t{(root / name).stat().st_size}\n".encode())
  return digest.hexdigest()[:16]


def _canonical_spec(spec: SplitSpec) -> Dict[str, object]:
  # Order and ignored fields do not change the data, so not the name either.
  canonical = {
      "seed": spec.seed,
      "test_speakers": sorted(set(spec.test_speakers)),
      "validation_indices": sorted(set(spec.validation_indices)),
      "image_fractions": [float(f) for f in spec.image_fractions],
  }
  if not spec.test_speakers:
    canonical["test_indices"] = sorted(set(spec.test_indices))
  if spec.validation_speakers:
    canonical["validation_speakers"] = sorted(set(spec.validation_speakers))
    del canonical["validation_indices"]
  return canonical


def config_name(spec: SplitSpec, manual_fingerprint: str) -> str:
  """TFDS config name: `{protocol}_seed{seed}_{hash}`.

  protocol is `official` or `speakers-{name}[-{name}...]` (sorted held-out
  speakers, characters outside [A-Za-z0-9] dropped); hash is 8 hex
  characters of sha256 over the canonical spec and the manual directory's
  fingerprint. Only [A-Za-z0-9_-] is used, which TFDS allows in config names
  (and in directory names).

  Args:
    spec: the split specification.
    manual_fingerprint: `fingerprint(manual_dir)`.

  Returns:
    e.g. "official_seed0_1a2b3c4d" or "speakers-theo_seed0_5e6f7a8b".
  """
  canonical = _canonical_spec(spec)
  protocol = "official"
  if spec.test_speakers:
    protocol = "-".join(["speakers"] + [
        re.sub(r"[^A-Za-z0-9]", "", s) for s in canonical["test_speakers"]])
  payload = json.dumps({"spec": canonical, "manual": manual_fingerprint},
                       sort_keys=True)
  digest = hashlib.sha256(payload.encode()).hexdigest()[:8]
  return f"{protocol}_seed{spec.seed}_{digest}"


@dataclasses.dataclass(eq=False)
class AvDigitsConfig(tfds.core.BuilderConfig):
  """A `SplitSpec` plus the manual directory's fingerprint.

  Build with `AvDigitsConfig.from_spec`, which sets `name` (see
  `config_name`), so each spec and manual-directory content is prepared into
  its own directory.

  Attributes:
    spec: the split specification.
    manual_fingerprint: `fingerprint(manual_dir)`; "" skips the check.
  """
  spec: SplitSpec = dataclasses.field(default_factory=SplitSpec)
  manual_fingerprint: str = ""

  @classmethod
  def from_spec(cls, spec: SplitSpec,
                manual_fingerprint: str) -> "AvDigitsConfig":
    """The config for `spec` and a manual directory with this fingerprint."""
    return cls(
        name=config_name(spec, manual_fingerprint),
        description=f"{spec}, manual dir fingerprint {manual_fingerprint}",
        spec=spec, manual_fingerprint=manual_fingerprint)


class AvDigits(LocalFilesBuilder):
  """MNIST images paired with FSDD recordings of the same digit.

  Features per example:
    image: uint8 [28, 28, 1], MNIST pixels 0-255 (stored as PNG).
    audio: int16 [samples], mono at 8000 Hz, 0.14-2.3 s (raw samples, no
      file encoding).
    label: int64 scalar, the digit 0-9 (ClassLabel, 10 classes).
    image_id: int64 scalar, index of the image in the MNIST file.
    recording: string, the FSDD file name `{digit}_{speaker}_{index}.wav`.
    speaker: string, the FSDD speaker.
  Splits: train, validation, test (see `mmjax.data.builders.splits`), keyed by
  image_id (each image is used once overall).

  Without a config, `SplitSpec()` (official split, seed 0) is used and the
  manual directory is not checked against a fingerprint.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Nothing is downloaded; the raw files are read from the manual "
      "directory (MMJAX_MANUAL_DIR or ../shared/data by default).\n" +
      sources.LAYOUT)

  @property
  def _spec(self) -> SplitSpec:
    return self.builder_config.spec if self.builder_config else SplitSpec()

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "MNIST test-set images paired with Free Spoken Digit Dataset "
            "recordings of the same digit (AV-MNIST style)."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(28, 28, 1), dtype=np.uint8),
            "audio": tfds.features.Audio(
                shape=(None,), dtype=np.int16,
                sample_rate=sources.SAMPLE_RATE),
            "label": tfds.features.ClassLabel(num_classes=sources.NUM_CLASSES),
            "image_id": tfds.features.Scalar(dtype=np.int64),
            "recording": tfds.features.Text(),
            "speaker": tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage=sources.FSDD_URL,
        citation=CITATION,
    )

  def _check_fingerprint(self, manual_dir: Path) -> None:
    expected = getattr(self.builder_config, "manual_fingerprint", "")
    actual = fingerprint(manual_dir)
    if expected and expected != actual:
      raise DataError(
          f"{manual_dir}: fingerprint {actual} differs from the config's "
          f"{expected}; build the config from this directory with "
          "AvDigitsConfig.from_spec(spec, fingerprint(manual_dir)).")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = Path(dl_manager.manual_dir)
    self._check_fingerprint(manual_dir)
    images, labels = sources.load_mnist(manual_dir)
    pairs = make_pairs(sources.list_fsdd(manual_dir), labels, self._spec)
    recordings_dir = manual_dir / sources.FSDD_RECORDINGS
    return {
        name: self._generate_examples(recordings_dir, images, split_pairs)
        for name, split_pairs in pairs.items()
    }

  def _generate_examples(self, recordings_dir: Path, images: np.ndarray,
                         pairs: List[Pair]) -> Iterator[Tuple[int, dict]]:
    audio_cache = {}  # Each recording is used by ~2-3 images of a split.
    for pair in pairs:
      audio = audio_cache.get(pair.recording)
      if audio is None:
        audio = sources.read_wav(recordings_dir / pair.recording)
        audio_cache[pair.recording] = audio
      yield pair.image_index, {
          "image": images[pair.image_index][:, :, None],
          "audio": audio,
          "label": pair.label,
          "image_id": pair.image_index,
          "recording": pair.recording,
          "speaker": pair.speaker,
      }


def get_builder(manual_dir: Optional[PathLike] = None,
                data_dir: Optional[PathLike] = None,
                spec: SplitSpec = SplitSpec()) -> AvDigits:
  """Returns the AvDigits builder for `spec`, prepared if it was not yet.

  Preparation reads the manual directory (never writes there) and writes
  TFRecords under `data_dir/av_digits/<config name>/1.0.0/`; a prepared
  config is reused, not rebuilt.

  Args:
    manual_dir: the raw files (see `sources.LAYOUT`); empty or None ->
      `resolve_manual_dir`.
    data_dir: TFDS data directory; empty or None -> `resolve_data_dir`.
    spec: the split specification.

  Returns:
    A prepared builder; read it with `builder.as_dataset(split=...)`.

  Raises:
    DataError: listing the missing files of the manual directory, or for
      malformed input files (naming them).
  """
  manual_dir = resolve_manual_dir(manual_dir)
  data_dir = resolve_data_dir(data_dir)
  config = AvDigitsConfig.from_spec(spec, fingerprint(manual_dir))
  builder = AvDigits(data_dir=os.fspath(data_dir), config=config)
  return prepare_once(builder, manual_dir)


@DATASETS.register("av_digits")
def from_config(data_config: ml_collections.ConfigDict) -> AvDigits:
  """`get_builder` for `config.data` (configs/av_digits.py): its keys
  manual_dir, data_dir, pairing_seed, test_speakers, validation_indices,
  test_indices, image_fractions and (optional) validation_speakers."""
  spec = SplitSpec(
      seed=data_config.pairing_seed,
      test_speakers=tuple(data_config.test_speakers),
      validation_indices=tuple(data_config.validation_indices),
      test_indices=tuple(data_config.test_indices),
      image_fractions=tuple(data_config.image_fractions),
      validation_speakers=tuple(data_config.get("validation_speakers", ())))
  return get_builder(resolve_manual_dir(data_config.manual_dir),
                     resolve_data_dir(data_config.data_dir), spec)
