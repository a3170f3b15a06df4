"""The `multimodal_manifest` TFDS builder, its config and its `DATASETS`
entry: a manifest's rows (see the package docstring for the format) read,
split and decoded into a prepared dataset."""

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from mmjax.data.builders.base import check_fractions
from mmjax.data.builders.base import LocalFilesBuilder
from mmjax.data.builders.base import PathLike
from mmjax.data.builders.base import prepare_once
from mmjax.data.builders.base import resolve_data_dir
from mmjax.data.builders.manifest import media
from mmjax.data.builders.manifest import table
from mmjax.data.builders.manifest.fingerprint import fingerprint
from mmjax.data.builders.manifest.splits import assign_splits
from mmjax.data.builders.manifest.table import LABEL
from mmjax.data.builders.manifest.table import Manifest
from mmjax.data.builders.manifest.table import Row
from mmjax.data.builders.manifest.table import SPLITS
from mmjax.data.builders.registry import DATASETS
from mmjax.data.builders.tokenizer import train_tokenizer
from mmjax.data.errors import DataError
from mmjax.data.pipeline import PRESENT

# What preparation does with a row whose file is missing or cannot be
# decoded: "fail" (a DataError naming the manifest line, column and file) or
# "skip" (a warning; the row is left out and its error listed in the
# prepared dataset's metadata, `skipped_examples[split]`).
BAD_EXAMPLES = ("fail", "skip")
TOKENIZER_DIR = "tokenizer"
# The metadata key of how many examples of each split have each modality.
MODALITY_EXAMPLES = "modality_examples"
VOCAB_SIZE = 8000


def _check_setting(key: str, value, integer: bool) -> None:
  """Raises ValueError unless `value` is an int >= 1 (`integer`) or a
  finite number > 0."""
  if integer:
    ok = not isinstance(value, bool) and int(value) == value and value >= 1
    expected = "an int >= 1"
  else:
    ok = (isinstance(value, (int, float, np.integer, np.floating)) and
          not isinstance(value, bool) and math.isfinite(value) and value > 0)
    expected = "a number > 0"
  if not ok:
    raise ValueError(f"{key} must be {expected}, got {value!r}")


def _name_number(value: float) -> str:
  """8.0 -> "8", 7.5 -> "7p5" (no dots in a config name)."""
  return f"{value:g}".replace(".", "p")


@dataclasses.dataclass(eq=False)
class ManifestConfig(tfds.core.BuilderConfig):
  """A manifest, its fingerprint and the preparation's settings.

  Build with `ManifestConfig.make`, which sets `name` =
  `{modalities}[_s{S} | _{H}x{W}][_sr{rate}][_v{V}_fr{fps}_{max}s]_seed{seed}
  _{hash}` (hash: 8 hex characters of sha256 over every field that matters
  for the manifest's modalities; the video settings only with a video
  column, `video_soundtrack` only with a video and no audio column), so a
  different manifest, content or setting never shares a prepared directory.

  Attributes:
    manifest: the manifest's absolute path.
    modalities: the dataset's modalities (`media.modalities_of`: its modality
      columns, and audio from the videos' soundtracks), in `MODALITIES`
      order.
    image_size: S when images are resized to [S, S, 3]; 0 keeps their size.
    image_shape: (H, W) of the stored images; (0, 0) without images.
    sample_rate: Hz of the stored audio.
    frame_rate: frames per second of the stored videos (Hz).
    video_size: V of the stored [T, V, V, 3] videos (pixels).
    max_video_seconds: the stored videos are at most this long (s).
    frame_folder_rate: frames per second of a frame folder's images (Hz).
    video_soundtrack: without an audio column, whether the audio comes from
      the video files' soundtracks (when they all have one).
    split_fractions: (train, validation, test) when there is no split column.
    split_seed: the seed of the stratified split.
    bad_examples: "fail" (a missing or unreadable file is an error) or
      "skip" (its row is left out and counted, see `BAD_EXAMPLES`).
    fingerprint: `fingerprint(manifest)` (of the `fingerprint` module).
    incomplete: the modalities some rows lack (an empty cell, see
      `media.row_modalities`), in `MODALITIES` order; when not empty, every
      example has a `present` feature (see the package docstring).
  """
  manifest: str = ""
  modalities: Tuple[str, ...] = ()
  image_size: int = 0
  image_shape: Tuple[int, int] = (0, 0)
  sample_rate: int = 8000
  frame_rate: float = 8.0
  video_size: int = 64
  max_video_seconds: float = 10.0
  frame_folder_rate: float = 8.0
  video_soundtrack: bool = True
  split_fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1)
  split_seed: int = 0
  bad_examples: str = "fail"
  fingerprint: str = ""
  incomplete: Tuple[str, ...] = ()

  @classmethod
  def make(cls, manifest: Manifest, image_size: Optional[int] = None,
           sample_rate: int = 8000,
           split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
           split_seed: int = 0, *, frame_rate: float = 8.0,
           video_size: int = 64, max_video_seconds: float = 10.0,
           frame_folder_rate: Optional[float] = None,
           video_soundtrack: bool = True,
           bad_examples: str = "fail") -> "ManifestConfig":
    """The named config of `manifest` with these settings.

    Opens the header of every image when `image_size` is None (to find
    their common size), and of every video file when its soundtrack may be
    the audio (`media.modalities_of`). `frame_folder_rate` None means
    `frame_rate`.

    Raises:
      ValueError: for image_size, sample_rate or video_size not an int >= 1,
        frame_rate, max_video_seconds or frame_folder_rate not > 0,
        video_soundtrack not a bool, bad fractions, or `bad_examples` not in
        BAD_EXAMPLES.
      DataError: for missing files, images of different sizes, unreadable
        video files or mixed soundtracks (see `media.modalities_of`), naming the
        row and file.
    """
    for key, value, integer in (
        ("image_size", image_size, True), ("sample_rate", sample_rate, True),
        ("video_size", video_size, True), ("frame_rate", frame_rate, False),
        ("max_video_seconds", max_video_seconds, False),
        ("frame_folder_rate", frame_folder_rate, False)):
      if value is not None:
        _check_setting(key, value, integer)
    check_fractions(split_fractions)
    if not isinstance(video_soundtrack, (bool, np.bool_)):
      raise ValueError(f"video_soundtrack must be a bool, got "
                       f"{video_soundtrack!r}")
    if bad_examples not in BAD_EXAMPLES:
      raise ValueError(f"bad_examples must be one of {BAD_EXAMPLES}, got "
                       f"{bad_examples!r}")
    skip = bad_examples == "skip"
    size = int(image_size or 0)
    shape = (0, 0)
    if "image" in manifest.modalities:
      shape = (size, size) if size else media.image_shape(manifest, skip)
    modalities = media.modalities_of(manifest, video_soundtrack)
    incomplete = tuple(m for m in modalities if not all(
        m in media.row_modalities(manifest, r, modalities)
        for r in manifest.rows))
    fields = {"manifest": os.fspath(manifest.path),
              "modalities": list(modalities), "image_size": size,
              "image_shape": list(shape), "sample_rate": int(sample_rate),
              "split_fractions": [float(f) for f in split_fractions],
              "split_seed": int(split_seed),
              "fingerprint": fingerprint(manifest, missing_ok=skip)}
    if skip:  # (not in the fields otherwise: names prepared before it stay)
      fields["bad_examples"] = bad_examples
    if incomplete:  # (likewise)
      fields["incomplete"] = list(incomplete)
    if "video" in manifest.modalities:
      fields.update(frame_rate=float(frame_rate), video_size=int(video_size),
                    max_video_seconds=float(max_video_seconds),
                    frame_folder_rate=float(frame_folder_rate or frame_rate))
    if media.soundtracks_apply(manifest, True):
      fields["video_soundtrack"] = bool(video_soundtrack)
    digest = hashlib.sha256(
        json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
    parts = ["-".join(modalities)]
    if "image" in modalities:
      parts.append(f"s{size}" if size else f"{shape[0]}x{shape[1]}")
    if "audio" in modalities:
      parts.append(f"sr{fields['sample_rate']}")
    if "video" in modalities:
      parts += [f"v{fields['video_size']}",
                f"fr{_name_number(fields['frame_rate'])}",
                f"{_name_number(fields['max_video_seconds'])}s"]
    parts += [f"seed{fields['split_seed']}", digest]
    return cls(name="_".join(parts), description=json.dumps(fields),
               **{**fields, "modalities": tuple(fields["modalities"]),
                  "incomplete": incomplete,
                  "image_shape": tuple(shape),
                  "split_fractions": tuple(fields["split_fractions"])})


class MultimodalManifest(LocalFilesBuilder):
  """The examples of a manifest (see the package docstring); needs a
  `ManifestConfig` (build it with `get_builder`)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  @property
  def _config(self) -> ManifestConfig:
    if not isinstance(self.builder_config, ManifestConfig):
      raise ValueError("MultimodalManifest needs a ManifestConfig: use "
                       "mmjax.data.builders.manifest.builder.get_builder("
                       "manifest, ...)")
    return self.builder_config

  def _features(self) -> Dict[str, tfds.features.FeatureConnector]:
    config = self._config
    height, width = config.image_shape
    modality_features = {
        "image": lambda: tfds.features.Image(
            shape=(height, width, 3), dtype=np.uint8, encoding_format="png"),
        "audio": lambda: tfds.features.Audio(
            shape=(None,), dtype=np.int16, sample_rate=config.sample_rate),
        "text": tfds.features.Text,
        "video": lambda: tfds.features.Video(
            shape=(None, config.video_size, config.video_size, 3),
            dtype=np.uint8),
    }
    features = {m: modality_features[m]() for m in config.modalities}
    if config.incomplete:
      features[PRESENT] = tfds.features.FeaturesDict(
          {m: tfds.features.Scalar(dtype=np.bool_)
           for m in config.modalities})
    features["label"] = tfds.features.ClassLabel()
    features["row"] = tfds.features.Scalar(dtype=np.int64)
    return features

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(f"The examples of the manifest {self._config.manifest} "
                     f"({', '.join(self._config.modalities)} and a label)."),
        features=tfds.features.FeaturesDict(self._features()),
        supervised_keys=None,
        metadata=tfds.core.MetadataDict(),
    )

  def _read_checked_manifest(self) -> Manifest:
    config = self._config
    manifest = table.read_manifest(config.manifest)
    actual = fingerprint(manifest, missing_ok=config.bad_examples == "skip")
    if actual != config.fingerprint:
      raise DataError(
          f"{manifest.path}: the manifest or its files changed since the "
          f"config was made (fingerprint {actual}, config "
          f"{config.fingerprint}); call get_builder(...) again.")
    return manifest

  def _train_tokenizer(self, texts: Sequence[str]) -> int:
    """Trains and saves the tokenizer; returns its vocabulary size."""
    tokenizer = train_tokenizer(texts, VOCAB_SIZE)
    tokenizer.save_pretrained(os.fspath(Path(self.data_dir) / TOKENIZER_DIR))
    return len(tokenizer)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing is downloaded.
    config = self._config
    manifest = self._read_checked_manifest()
    splits = assign_splits(manifest, config.split_fractions,
                           config.split_seed)
    self.info.features["label"].names = list(manifest.labels)
    rows_of = {s: [r for r, rs in zip(manifest.rows, splits) if rs == s]
               for s in SPLITS}
    metadata = {"manifest": os.fspath(manifest.path),
                "num_examples": {s: len(rows_of[s]) for s in SPLITS}}
    if "text" in manifest.modalities:
      start = time.perf_counter()
      metadata["tokenizer_dir"] = TOKENIZER_DIR
      metadata["tokenizer_vocab_size"] = self._train_tokenizer(
          [r.values["text"] for r in rows_of["train"]
           if manifest.has(r, "text")])
      logging.info("Trained the tokenizer in %.1f s.",
                   time.perf_counter() - start)
    self.info.metadata.update(metadata)
    # TFDS cannot write an empty split: leave it out.
    return {s: self._generate_examples(manifest, rows_of[s], s)
            for s in SPLITS if rows_of[s]}

  def _generate_examples(self, manifest: Manifest, rows: List[Row],
                         split: str) -> Iterator[Tuple[int, dict]]:
    """The split's examples; with bad_examples="skip", a row whose file is
    missing or cannot be decoded is logged and listed in the dataset's
    metadata `skipped_examples[split]` (its DataError messages). The
    metadata `modality_examples[split]` counts the examples having each
    modality."""
    skipped = []
    counts = dict.fromkeys(self._config.modalities, 0)
    self.info.metadata.setdefault(MODALITY_EXAMPLES, {})[split] = counts
    for row in rows:
      try:
        example = self._read_example(manifest, row)
      except DataError as e:
        if self._config.bad_examples != "skip":
          raise
        logging.warning("Skipped (bad_examples='skip'): %s", e)
        skipped.append(str(e))
        continue
      for m in media.row_modalities(manifest, row, self._config.modalities):
        counts[m] += 1
      yield row.number, example
    self.info.metadata.setdefault("skipped_examples", {})[split] = skipped

  def _placeholder(self, modality: str):
    """The stored value of a modality the row lacks: zeros of the feature's
    shape and dtype (audio: 1 sample; video: 1 frame), or an empty text.
    The `present` flag masks it out of the model."""
    config = self._config
    return {"image": lambda: np.zeros((*config.image_shape, 3), np.uint8),
            "audio": lambda: np.zeros((1,), np.int16),
            "text": lambda: "",
            "video": lambda: np.zeros(
                (1, config.video_size, config.video_size, 3), np.uint8),
            }[modality]()

  def _read_example(self, manifest: Manifest, row: Row) -> dict:
    config = self._config
    has = media.row_modalities(manifest, row, config.modalities)
    example = {"label": row.values[LABEL], "row": row.number}
    if "image" in has:
      example["image"] = media.read_image(manifest, row, config.image_size)
    if "audio" in has and "audio" in manifest.columns:
      example["audio"] = media.read_audio(manifest, row, config.sample_rate)
    elif "audio" in has:
      example["audio"] = media.read_soundtrack(
          manifest, row, config.sample_rate, config.max_video_seconds)
    if "text" in has:
      example["text"] = row.values["text"]
    if "video" in has:
      example["video"] = media.read_video(
          manifest, row, config.frame_rate, config.video_size,
          config.max_video_seconds, config.frame_folder_rate)
    for m in config.modalities:
      if m not in has:
        example[m] = self._placeholder(m)
    if config.incomplete:
      example[PRESENT] = {m: m in has for m in config.modalities}
    return example


def get_builder(manifest: PathLike, data_dir: Optional[PathLike] = None, *,
                image_size: Optional[int] = None, sample_rate: int = 8000,
                split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
                split_seed: int = 0, frame_rate: float = 8.0,
                video_size: int = 64, max_video_seconds: float = 10.0,
                frame_folder_rate: Optional[float] = None,
                video_soundtrack: bool = True,
                bad_examples: str = "fail") -> MultimodalManifest:
  """Returns the builder of `manifest`, prepared if it was not yet.

  The manifest is read and checked (and its splits assigned) before anything
  is written; preparation decodes every file and writes TFRecords (and the
  tokenizer, with a text column) under
  `data_dir/multimodal_manifest/<config name>/1.0.0/` (see
  `ManifestConfig`); a prepared copy of the same content and settings is
  reused, not rebuilt.

  Args:
    manifest: the `.csv` / `.jsonl` manifest (see the package docstring).
    data_dir: TFDS data directory; empty or None -> `resolve_data_dir`
      (MMJAX_DATA_DIR, else ~/tensorflow_datasets).
    image_size: S to resize the images to [S, S, 3]; None keeps their size
      (all images must then share one).
    sample_rate: Hz of the stored audio (files at another rate are
      resampled).
    split_fractions: (train, validation, test) of each label's rows, when
      the manifest has no split column.
    split_seed: the seed of that split.
    frame_rate: frames per second (Hz) of the stored videos (see
      `media.read_video`).
    video_size: S of the stored uint8 [T, S, S, 3] video frames (pixels).
    max_video_seconds: the stored videos are cut to their first this many
      seconds.
    frame_folder_rate: frames per second (Hz) of the images of a frame
      folder; None: `frame_rate` (one stored frame per image).
    video_soundtrack: with a video column and no audio column, the audio
      is the video files' soundtracks (`media.read_soundtrack`) when every
      one has one (see `media.modalities_of`); False: no audio.
    bad_examples: "fail" or "skip" rows with a missing or undecodable file
      (`BAD_EXAMPLES`; the video soundtrack check still fails on them).

  Returns:
    A prepared builder; read it with `builder.as_dataset(split=...)`.

  Raises:
    DataError: naming the manifest (and the line, row and file where one is
      at fault): see `table.read_manifest`, `splits.assign_splits`, and
      `image_shape`, `read_image`, `read_audio`, `modalities_of`,
      `read_soundtrack`, `read_video` of `media`.
    ValueError: for bad settings (see `ManifestConfig.make`).
  """
  parsed = table.read_manifest(manifest)
  assign_splits(parsed, split_fractions, split_seed)  # Fails early.
  config = ManifestConfig.make(
      parsed, image_size, sample_rate, split_fractions, split_seed,
      frame_rate=frame_rate, video_size=video_size,
      max_video_seconds=max_video_seconds,
      frame_folder_rate=frame_folder_rate, video_soundtrack=video_soundtrack,
      bad_examples=bad_examples)
  builder = MultimodalManifest(data_dir=os.fspath(resolve_data_dir(data_dir)),
                               config=config)
  return prepare_once(builder)


@DATASETS.register("multimodal_manifest")
def from_config(data_config: ml_collections.ConfigDict) -> MultimodalManifest:
  """`get_builder` for `config.data`: the user's own examples, listed in a
  CSV or JSON-lines manifest with one column per modality (image, audio,
  text, video), a `label` and an optional `split`.

  Keys of `data_config` (all but `name` and `manifest` optional):
    manifest: path of the `.csv` / `.jsonl` manifest (required; file paths
      in it are relative to its folder).
    data_dir: TFDS data directory; "" or None -> MMJAX_DATA_DIR, else
      ~/tensorflow_datasets.
    image_size: S to resize the images to uint8 [S, S, 3] with Pillow; 0 or
      None keeps the files' own size, which all images must then share
      (default None).
    sample_rate: Hz of the stored int16 audio; files at another rate are
      resampled (default 8000).
    split_fractions: (train, validation, test) of each label's rows when
      the manifest has no `split` column (default (0.8, 0.1, 0.1)).
    split_seed: the seed of that stratified split (default 0).
    frame_rate: frames per second of the stored videos (default 8).
    video_size: S of the stored uint8 [T, S, S, 3] videos (default 64).
    max_video_seconds: videos are cut to their first this many seconds
      (default 10).
    frame_folder_rate: frames per second of a folder of frame images; 0 or
      None: `frame_rate` (default None).
    video_soundtrack: with a video column and no audio column, the audio is
      the video files' soundtracks when every one has an audio stream
      (none has: no audio; some have: a DataError) (default True).
    bad_examples: "fail" (default) or "skip": a row whose file is missing
      or cannot be decoded is an error naming the file, or is left out and
      counted (`BAD_EXAMPLES`).
  Each manifest content (and the sizes and times of its files) and each
  combination of settings is prepared once into its own config directory.

  Raises:
    ValueError: naming `config.data.manifest` when it is empty.
  """
  if not data_config.get("manifest"):
    raise ValueError(
        "config.data.manifest is empty: name your manifest in the "
        "config-file argument, e.g. --config "
        "configs/manifest.py:manifest=/path/to/data.csv (which also reads "
        "its modalities and number of classes).")
  return get_builder(
      data_config.manifest, data_config.get("data_dir"),
      image_size=data_config.get("image_size") or None,
      sample_rate=data_config.get("sample_rate", 8000),
      split_fractions=tuple(data_config.get("split_fractions",
                                            (0.8, 0.1, 0.1))),
      split_seed=data_config.get("split_seed", 0),
      frame_rate=data_config.get("frame_rate", 8.0),
      video_size=data_config.get("video_size", 64),
      max_video_seconds=data_config.get("max_video_seconds", 10.0),
      frame_folder_rate=data_config.get("frame_folder_rate") or None,
      video_soundtrack=data_config.get("video_soundtrack", True),
      bad_examples=data_config.get("bad_examples", "fail"))
