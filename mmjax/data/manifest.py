"""multimodal_manifest: the user's own data, listed in a manifest (TFDS).

A manifest is a table with one row per example and one column per modality:

  * `.csv`: a header row, then one row per example (Python's `csv` dialect:
    commas, double quotes around values holding commas or newlines);
  * `.jsonl` or `.json`: one JSON object per line (blank lines are skipped;
    a key missing from a line is an empty field).

Columns:
  image: a file path, relative to the manifest's folder (or absolute): a
    PNG, JPEG, BMP or GIF image (GIF: its first frame), decoded with Pillow
    and converted to RGB.
  audio: a file path (as above): a WAV, FLAC or OGG recording, decoded with
    `soundfile`, or any other file with an audio stream that PyAV (FFmpeg)
    decodes, e.g. MP3, M4A, MP4, WebM or MKV (its first audio stream, from
    its first sample); mixed down to mono (mean of the channels) and
    resampled to `sample_rate` Hz with `librosa.resample(res_type=
    "soxr_hq")` when its own rate differs.
  text: the text itself (UTF-8), inline.
  video: a path (as above) to a video file that PyAV (FFmpeg) decodes, e.g.
    MP4, WebM, AVI, MKV or MOV (its first video stream), or to a folder of
    PNG, JPEG or BMP frames (the files with those suffixes, in file-name
    order, so number them with leading zeros; other files are ignored)
    shown at `frame_folder_rate` frames/s (default `frame_rate`). Resampled
    to `frame_rate` frames/s (see `resample_indices`), cut to its first
    `max_video_seconds`, each frame converted to RGB and resized to
    `video_size` x `video_size` with Pillow (bicubic).
  label: required, the class name (a string; JSON numbers are read as their
    text, e.g. 3 -> "3").
  split: optional, "train", "validation" or "test". Without it, the rows of
    each label are shuffled with `split_seed` and divided by
    `split_fractions` (see `assign_splits`).
At least one of image, audio, text and video is needed; every row must
fill each column the manifest has. Other columns are an error.

Soundtracks: with a video column and no audio column, the audio modality
is the video files' soundtracks when `video_soundtrack` (default True) and
every row's video file has an audio stream (`modalities_of` probes their
headers): each its first audio stream, aligned so that sample 0 is at the
video's first frame and cut to `max_video_seconds` (`read_soundtrack`),
then stored like the audio column's files. When no video has one (frame
folders have none), there is no audio; when only some have, a DataError
names the first row without one.

Features per example (only the dataset's modalities, `modalities_of`):
  image: uint8 [H, W, 3]: [S, S, 3] resized with Pillow (bicubic) when
    `image_size` S is given, else the files' own size, which all images must
    share (stored as PNG).
  audio: int16 [samples] (variable length), mono at `sample_rate` Hz, as
    av_digits stores it (pp: `to_float|pad_or_crop(...)`); from the audio
    column, or the videos' soundtracks (see above).
  text: tf.string [], the row's text.
  video: uint8 [T, S, S, 3] (T variable, 1 <= T <= ceil(max_video_seconds *
    frame_rate)), `frame_rate` frames/s, S = `video_size` (frames stored as
    PNG; pp: `sample_clip(...)`, then the `video_*` ops).
  label: int64, `ClassLabel(names=sorted labels of the whole manifest)`.
  row: int64, the example's 1-based data row in the manifest (the header is
    not a row), to trace a result back to its source.

If the manifest has a text column, a byte-level BPE tokenizer
(`mmjax.data.emoji.train_tokenizer`, at most `VOCAB_SIZE` tokens) is trained
on the train split's texts during preparation and saved in
`<builder.data_dir>/tokenizer`, for `tokenize(tokenizer=
"{dataset_dir}/tokenizer", max_length=...)`.

Every problem with the manifest or a file it names is a `DataError` that
names the manifest, the line and data row and the file, e.g.

    data.csv, line 7 (row 6), column image: photos/cat_3.png: no such file

Typical use:

    builder = get_builder("/data/pets/data.csv", image_size=64)
    ds = builder.as_dataset(split="train")

Each manifest content (with the sizes and modification times of the files it
names) and each setting is prepared once into its own TFDS config directory,
e.g. `image-audio-text-video_s64_sr8000_v64_fr8_10s_seed0_1a2b3c4d`;
preparing again reuses it.
"""

import collections
import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from mmjax.data import emoji
from mmjax.data import manifest_video
from mmjax.data.av_digits import PathLike
from mmjax.data.av_digits import resolve_data_dir
from mmjax.data.emoji import check_fractions
from mmjax.data.errors import DataError
from mmjax.data.local_builder import LocalFilesBuilder
from mmjax.data.local_builder import prepare_once
# Re-exported: the video decoding lives in manifest_video.
from mmjax.data.manifest_video import FRAME_FORMATS  # noqa: F401
from mmjax.data.manifest_video import FRAME_SUFFIXES  # noqa: F401
from mmjax.data.manifest_video import frame_files
from mmjax.data.manifest_video import resample_indices  # noqa: F401
from mmjax.data.manifest_video import TIME_TOLERANCE  # noqa: F401

MODALITIES = ("image", "audio", "text", "video")
LABEL = "label"
SPLIT = "split"
SPLITS = ("train", "validation", "test")
COLUMNS = MODALITIES + (LABEL, SPLIT)
FILE_MODALITIES = ("image", "audio", "video")
# What preparation does with a row whose file is missing or cannot be
# decoded: "fail" (a DataError naming the manifest line, column and file) or
# "skip" (a warning; the row is left out and its error listed in the
# prepared dataset's metadata, `skipped_examples[split]`).
BAD_EXAMPLES = ("fail", "skip")
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF")  # Pillow's format names.
AUDIO_FORMATS = ("WAV", "FLAC", "OGG")  # soundfile's format names.
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".json")
TOKENIZER_DIR = "tokenizer"
VOCAB_SIZE = 8000
_EXPECTED = (
    "a .csv file with a header row, or a .jsonl file with one JSON object "
    "per line; columns: a `label` (the class name), at least one of "
    "`image` (a file path), `audio` (a file path), `text` (the text) and "
    "`video` (a file or frame folder path), and optionally `split` "
    "(train/validation/test)")


@dataclasses.dataclass(frozen=True)
class Row:
  """One example of a manifest.

  Attributes:
    number: the 1-based data row (the header is not a row).
    line: the 1-based line of the file where the row starts.
    values: `{column: value}` for every column of the manifest ("" when
      empty); file paths as written in the manifest.
  """
  number: int
  line: int
  values: Dict[str, str]


@dataclasses.dataclass(frozen=True)
class Manifest:
  """A parsed, checked manifest.

  Attributes:
    path: the manifest file (absolute).
    columns: its columns, in file order.
    rows: its rows, in file order (at least one).
  """
  path: Path
  columns: Tuple[str, ...]
  rows: Tuple[Row, ...]

  @property
  def modalities(self) -> Tuple[str, ...]:
    """The modality columns, in `MODALITIES` order."""
    return tuple(m for m in MODALITIES if m in self.columns)

  @property
  def labels(self) -> Tuple[str, ...]:
    """The distinct labels, sorted: the ClassLabel names."""
    return tuple(sorted({row.values[LABEL] for row in self.rows}))

  def where(self, row: Row, column: Optional[str] = None) -> str:
    """`"<manifest>, line L (row R)[, column C]"`, for error messages."""
    text = f"{self.path}, line {row.line} (row {row.number})"
    return f"{text}, column {column}" if column else text

  def file(self, row: Row, column: str) -> Path:
    """The file named by `row`'s `column`, relative to the manifest's
    folder unless absolute."""
    return self.path.parent / Path(row.values[column]).expanduser()


# Reading the manifest.


def _cell(value) -> str:
  """A JSON value as a manifest field (None -> "")."""
  if value is None:
    return ""
  if isinstance(value, (dict, list)):
    raise TypeError(f"expected a string, got {json.dumps(value)[:60]}")
  return value if isinstance(value, str) else json.dumps(value)


def _read_csv(path: Path) -> Tuple[List[str], List[Tuple[int, Dict[str, str]]]]:
  """(columns, [(line, {column: value})]) of a CSV file with a header."""
  with path.open(newline="", encoding="utf-8-sig") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
      raise DataError(f"{path}: the manifest is empty; expected {_EXPECTED}.")
    columns = [c.strip() for c in header]
    records = []
    line = reader.line_num + 1
    for values in reader:
      if any(v.strip() for v in values):
        if len(values) != len(columns):
          raise DataError(
              f"{path}, line {line}: {len(values)} fields, but the header "
              f"has {len(columns)} ({', '.join(columns)}).")
        records.append((line, dict(zip(columns, values))))
      line = reader.line_num + 1  # A quoted field may span several lines.
  return columns, records


def _read_jsonl(path: Path
                ) -> Tuple[List[str], List[Tuple[int, Dict[str, str]]]]:
  """(columns in first-seen order, [(line, {column: value})])."""
  columns: Dict[str, None] = {}
  records = []
  with path.open(encoding="utf-8-sig") as f:
    for line, text in enumerate(f, start=1):
      if not text.strip():
        continue
      try:
        obj = json.loads(text)
        if not isinstance(obj, dict):
          raise TypeError("not a JSON object")
        values = {str(k).strip(): _cell(v) for k, v in obj.items()}
      except (json.JSONDecodeError, TypeError) as e:
        raise DataError(f"{path}, line {line}: not a JSON object of string "
                        f"fields ({e}); expected {_EXPECTED}.") from e
      columns.update(dict.fromkeys(values))
      records.append((line, values))
  return list(columns), records


def _check_columns(path: Path, columns: Sequence[str]) -> None:
  unknown = [c for c in columns if c not in COLUMNS]
  if unknown:
    raise DataError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}"
                    f"; allowed columns: {', '.join(COLUMNS)}.")
  if LABEL not in columns:
    raise DataError(f"{path}: no `label` column; expected {_EXPECTED}.")
  if not any(m in columns for m in MODALITIES):
    raise DataError(f"{path}: no modality column; expected {_EXPECTED}.")


def _check_row(manifest: Manifest, row: Row) -> None:
  for column in manifest.columns:
    if not row.values[column].strip():
      raise DataError(f"{manifest.where(row, column)}: empty field; every "
                      f"row needs a {column}.")
  split = row.values.get(SPLIT)
  if split is not None and split.strip() not in SPLITS:
    raise DataError(f"{manifest.where(row, SPLIT)}: unknown split "
                    f"{split!r}; expected one of {', '.join(SPLITS)}.")


def read_manifest(path: PathLike) -> Manifest:
  """Reads and checks a manifest (the files it names are not opened).

  Fields other than `text` are stripped of surrounding white space.

  Args:
    path: a `.csv`, `.jsonl` or `.json` manifest (see the module docstring).

  Returns:
    The `Manifest`, with at least one row.

  Raises:
    DataError: naming the manifest, for a missing or unreadable file, an
      unknown suffix, unknown columns, no label or modality column, no rows,
      a CSV row with the wrong number of fields, a JSON line that is not an
      object of scalars, an empty field or an unknown split (these also name
      the line and row).
  """
  path = Path(path).expanduser().resolve()
  if not path.is_file():
    raise DataError(f"{path}: no such manifest; expected {_EXPECTED}.")
  suffix = path.suffix.lower()
  if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
    raise DataError(f"{path}: unknown manifest type {suffix!r}; expected "
                    f"{_EXPECTED}.")
  try:
    columns, records = (_read_csv if suffix in CSV_SUFFIXES
                        else _read_jsonl)(path)
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise DataError(f"{path}: cannot read the manifest ({e}); expected "
                    f"{_EXPECTED}.") from e
  _check_columns(path, columns)
  if not records:
    raise DataError(f"{path}: the manifest has no rows; expected {_EXPECTED}.")
  rows = tuple(
      Row(number, line, {c: (values.get(c, "") if c == "text"
                             else values.get(c, "").strip()) for c in columns})
      for number, (line, values) in enumerate(records, start=1))
  manifest = Manifest(path, tuple(columns), rows)
  for row in rows:
    _check_row(manifest, row)
  return manifest


# Splits.


def _stratified_splits(manifest: Manifest, fractions: Sequence[float],
                       seed: int) -> List[str]:
  bounds = np.cumsum(fractions)
  rng = np.random.default_rng(seed)
  by_label = collections.defaultdict(list)
  for i, row in enumerate(manifest.rows):
    by_label[row.values[LABEL]].append(i)
  splits = [""] * len(manifest.rows)
  for label in sorted(by_label):
    indices = by_label[label]
    ends = [int(math.floor(b * len(indices) + 0.5)) for b in bounds]
    if fractions[0] > 0:  # Every class keeps a training example.
      ends[0] = max(ends[0], 1)
    ends[1] = max(ends[1], ends[0])
    ends[2] = len(indices)
    for position, i in enumerate(rng.permutation(indices)):
      splits[i] = SPLITS[int(np.searchsorted(ends, position, side="right"))]
  return splits


def _check_labels_seen_in_train(manifest: Manifest,
                                splits: Sequence[str]) -> None:
  trained = {r.values[LABEL] for r, s in zip(manifest.rows, splits)
             if s == "train"}
  unseen = collections.defaultdict(list)
  for row, split in zip(manifest.rows, splits):
    if row.values[LABEL] not in trained:
      unseen[row.values[LABEL]].append(row)
  if unseen:
    label, rows = min(unseen.items())
    lines = ", ".join(f"{r.line} (row {r.number})" for r in rows[:10])
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    raise DataError(
        f"{manifest.path}: label {label!r} is in no train row, only in "
        f"validation/test at line(s) {lines}{more}; a class needs training "
        f"examples. Add train rows of {label!r} or remove these rows.")


def assign_splits(manifest: Manifest,
                  fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> List[str]:
  """The split of each row ("train", "validation" or "test"), in row order.

  With a `split` column, its values. Without, stratified by label: the rows
  of each label (labels in sorted order, one `np.random.default_rng(seed)`
  for all) are shuffled and the first round(f_train * n) go to train, up to
  round((f_train + f_validation) * n) to validation, the rest to test
  (rounding halves up; each
  label with f_train > 0 keeps at least one train row). Deterministic given
  (manifest, fractions, seed).

  Raises:
    ValueError: for bad fractions (see `emoji.check_fractions`).
    DataError: naming the manifest, the label and its rows, when a label has
      validation or test rows but no train row.
  """
  check_fractions(fractions)
  if SPLIT in manifest.columns:
    splits = [row.values[SPLIT] for row in manifest.rows]
  else:
    splits = _stratified_splits(manifest, fractions, seed)
  _check_labels_seen_in_train(manifest, splits)
  return splits


# Reading the files.


def _missing(manifest: Manifest, row: Row, column: str) -> DataError:
  return DataError(f"{manifest.where(row, column)}: "
                   f"{manifest.file(row, column)}: no such file.")


def _unreadable(manifest: Manifest, row: Row, column: str, reason: str,
                expected: str, path: Optional[Path] = None) -> DataError:
  """The error of the row's file, or of `path` (a frame in its folder)."""
  return DataError(f"{manifest.where(row, column)}: "
                   f"{path or manifest.file(row, column)}: cannot read it "
                   f"({reason}); expected {expected}.")


_IMAGE_EXPECTED = "a PNG, JPEG, BMP or GIF image"
_AUDIO_EXPECTED = ("a WAV, FLAC or OGG recording, or a file with an audio "
                   "stream that PyAV (FFmpeg) decodes, e.g. MP3, M4A, MP4, "
                   "WebM or MKV")
_VIDEO_EXPECTED = ("a video file that PyAV (FFmpeg) decodes, e.g. MP4, WebM, "
                   "AVI, MKV or MOV, or a folder of PNG, JPEG or BMP frames")
_FRAME_EXPECTED = "a PNG, JPEG or BMP image (a frame of the video)"
_SOUNDTRACK_OFF = (
    "set data.video_soundtrack=False (configs/manifest.py: "
    "`video_soundtrack=false` in the config argument) to leave the "
    "soundtracks out")
_SOUNDTRACK_EXPECTED = (
    "a video file with an audio stream that PyAV (FFmpeg) decodes (without "
    "an audio column, the audio comes from the videos' soundtracks), or "
    + _SOUNDTRACK_OFF)


@contextlib.contextmanager
def _decoding(manifest: Manifest, row: Row, column: str,
              expected: str) -> Iterator[None]:
  """Raises `manifest_video.Unreadable` as the row's `DataError`."""
  try:
    yield
  except manifest_video.Unreadable as e:
    raise _unreadable(manifest, row, column, e.reason,
                      _FRAME_EXPECTED if e.path else expected, e.path) from e


def _open_image(manifest: Manifest, row: Row):
  """The row's image, opened (lazily) by Pillow, with its format checked."""
  import PIL.Image  # pylint: disable=g-import-not-at-top
  path = manifest.file(row, "image")
  if not path.is_file():
    raise _missing(manifest, row, "image")
  try:
    image = PIL.Image.open(path)
  except (OSError, PIL.UnidentifiedImageError) as e:
    raise _unreadable(manifest, row, "image", str(e), _IMAGE_EXPECTED) from e
  if image.format not in IMAGE_FORMATS:
    raise _unreadable(manifest, row, "image", f"a {image.format} image",
                      _IMAGE_EXPECTED)
  return image


def image_shape(manifest: Manifest, skip_bad: bool = False) -> Tuple[int, int]:
  """(height, width) shared by all the manifest's images (headers only).

  Args:
    manifest: the manifest.
    skip_bad: ignore missing or unreadable images (they are skipped at
      preparation, see `BAD_EXAMPLES`).

  Raises:
    DataError: naming the row and file of a missing or unreadable image
      (unless `skip_bad`), or of the first image whose size differs from the
      first row's.
  """
  first, shape = None, None
  for row in manifest.rows:
    try:
      with _open_image(manifest, row) as image:
        this = (image.height, image.width)
    except DataError:
      if skip_bad:
        continue
      raise
    if shape is None:
      first, shape = row, this
    elif this != shape:
      raise DataError(
          f"{manifest.where(row, 'image')}: {manifest.file(row, 'image')} "
          f"is {this[1]} x {this[0]} pixels but the image of line "
          f"{first.line} (row {first.number}) is {shape[1]} x {shape[0]}; "
          f"images must share one size, or set image_size to resize them.")
  if shape is None:
    raise DataError(f"{manifest.path}: no image could be read; expected "
                    f"{_IMAGE_EXPECTED} files.")
  return shape


def read_image(manifest: Manifest, row: Row,
               size: Optional[int] = None) -> np.ndarray:
  """The row's image as uint8 [H, W, 3] RGB ([size, size, 3] when `size`).

  Resizing uses Pillow's bicubic filter on the RGB image.

  Raises:
    DataError: naming the row and file, if missing, not an image of
      `IMAGE_FORMATS` or corrupt.
  """
  import PIL.Image  # pylint: disable=g-import-not-at-top
  with _open_image(manifest, row) as image:
    try:
      rgb = image.convert("RGB")  # Decodes: a corrupt file fails here.
    except (OSError, ValueError) as e:
      raise _unreadable(manifest, row, "image", str(e),
                        _IMAGE_EXPECTED) from e
  if size:
    rgb = rgb.resize((size, size), PIL.Image.Resampling.BICUBIC)
  return np.asarray(rgb, dtype=np.uint8)


def to_int16(samples: np.ndarray) -> np.ndarray:
  """Float samples in [-1, 1) -> int16 (x * 32768, rounded, clipped)."""
  return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def _sound_file(path: Path) -> Tuple[np.ndarray, int]:
  """(float64 [samples] mono, rate Hz) of an audio file: soundfile's
  `AUDIO_FORMATS`, else PyAV (`manifest_video.read_audio_stream`).

  Raises:
    manifest_video.Unreadable: for a corrupt `AUDIO_FORMATS` file, or one
      neither decodes (both reasons).
  """
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  try:
    with sf.SoundFile(path) as f:
      if f.format in AUDIO_FORMATS:
        try:
          samples = f.read(dtype="float64", always_2d=True)
        except (sf.SoundFileError, RuntimeError, TypeError) as e:
          raise manifest_video.Unreadable(str(e)) from e
        return samples.mean(axis=1), f.samplerate
      not_read = f"a {f.format} file"
  except (sf.SoundFileError, RuntimeError, TypeError) as e:
    not_read = getattr(e, "error_string", None) or str(e)
  try:
    return manifest_video.read_audio_stream(path)
  except manifest_video.Unreadable as e:
    raise manifest_video.Unreadable(
        f"soundfile: {not_read}; PyAV: {e.reason}") from e


def _stored_audio(manifest: Manifest, row: Row, column: str,
                  mono: np.ndarray, rate: int, sample_rate: int,
                  expected: str) -> np.ndarray:
  """float64 [samples] mono at `rate` Hz -> int16 at `sample_rate` Hz,
  resampled with `librosa.resample(res_type="soxr_hq")` if the rates
  differ; a DataError for no samples."""
  if not mono.size:
    raise _unreadable(manifest, row, column, "no samples", expected)
  if rate != sample_rate:
    import librosa  # pylint: disable=g-import-not-at-top
    mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate,
                            res_type="soxr_hq")
  return to_int16(mono)


def read_audio(manifest: Manifest, row: Row, sample_rate: int) -> np.ndarray:
  """The row's recording as int16 [samples], mono at `sample_rate` Hz.

  A WAV, FLAC or OGG file (`AUDIO_FORMATS`) is decoded by soundfile; any
  other (one soundfile cannot open, or of another format, e.g. MP3, M4A,
  MP4, WebM, MKV) by PyAV: its first audio stream, from its first decoded
  sample (not aligned with a video stream; see `read_soundtrack`). Either
  as float64, channels averaged, resampled with
  `librosa.resample(res_type="soxr_hq")` if the file's rate differs, then
  `to_int16` (so 16-bit mono samples at `sample_rate` are returned
  exactly).

  Raises:
    DataError: naming the row and file, if missing, undecodable by both,
      without an audio stream, or without samples.
  """
  path = manifest.file(row, "audio")
  if not path.is_file():
    raise _missing(manifest, row, "audio")
  with _decoding(manifest, row, "audio", _AUDIO_EXPECTED):
    mono, rate = _sound_file(path)
  return _stored_audio(manifest, row, "audio", mono, rate, sample_rate,
                       _AUDIO_EXPECTED)


def read_soundtrack(manifest: Manifest, row: Row, sample_rate: int,
                    max_seconds: float = 10.0) -> np.ndarray:
  """The soundtrack of the row's video file as int16 [samples], mono at
  `sample_rate` Hz, aligned with `read_video`'s frames.

  Its first audio stream, decoded with PyAV from the time of the first
  decoded video frame (zero-padded or cut at the start, see
  `manifest_video.read_soundtrack`), cut to its first `max_seconds` like
  the video, then as in `read_audio` (channels averaged, resampled with
  librosa's soxr_hq, `to_int16`).

  Raises:
    DataError: naming the row, the video column and the file: missing, a
      frame folder, a file PyAV cannot open or decode, without a video or
      audio stream, or without audio samples from its first frame on.
  """
  path = manifest.file(row, "video")
  if path.is_dir():
    raise _unreadable(manifest, row, "video",
                      "soundtrack: a frame folder has none",
                      _SOUNDTRACK_EXPECTED)
  if not path.is_file():
    raise _missing(manifest, row, "video")
  with _decoding(manifest, row, "video", _SOUNDTRACK_EXPECTED):
    mono, rate = manifest_video.read_soundtrack(path, max_seconds)
  return _stored_audio(manifest, row, "video", mono, rate, sample_rate,
                       _SOUNDTRACK_EXPECTED)


def _soundtracks_apply(manifest: Manifest, video_soundtrack: bool) -> bool:
  return (video_soundtrack and "video" in manifest.columns
          and "audio" not in manifest.columns)


def modalities_of(manifest: Manifest,
                  video_soundtrack: bool = True) -> Tuple[str, ...]:
  """The modalities of the manifest's dataset, in `MODALITIES` order.

  Its modality columns, and `audio` when the video files' soundtracks give
  it: with `video_soundtrack`, a video column and no audio column, every
  row's video file is opened with PyAV to list its streams
  (`manifest_video.has_audio_stream`: no frames are decoded; a frame
  folder has no soundtrack), until the answer is known: audio when every
  one has an audio stream, none when none has.

  Raises:
    DataError: naming the row and file, for a missing or unreadable video
      file, or (soundtracks on) the first row whose video has no audio
      stream when another row's has (naming that one too), with what to do.
  """
  if not _soundtracks_apply(manifest, video_soundtrack):
    return manifest.modalities
  with_sound, without = None, None
  for row in manifest.rows:
    path = manifest.file(row, "video")
    if not path.exists():
      raise _missing(manifest, row, "video")
    with _decoding(manifest, row, "video", _VIDEO_EXPECTED):
      if manifest_video.has_audio_stream(path):
        with_sound = with_sound or row
      else:
        without = without or row
    if with_sound and without:
      raise _mixed_soundtracks(manifest, without, with_sound)
  if without:
    return manifest.modalities
  return tuple(m for m in MODALITIES if m in manifest.modalities + ("audio",))


def _mixed_soundtracks(manifest: Manifest, without: Row,
                       with_sound: Row) -> DataError:
  kind = ("a frame folder" if manifest.file(without, "video").is_dir()
          else "no audio stream")
  return DataError(
      f"{manifest.where(without, 'video')}: {manifest.file(without, 'video')}"
      f": no soundtrack ({kind}), but the video of line {with_sound.line} "
      f"(row {with_sound.number}) has one. Without an audio column the "
      f"audio comes from the videos' soundtracks (data.video_soundtrack="
      f"True), so every video needs one: give this video a soundtrack, or "
      f"{_SOUNDTRACK_OFF}.")


def read_video(manifest: Manifest, row: Row, frame_rate: float = 8.0,
               size: int = 64, max_seconds: float = 10.0,
               folder_rate: Optional[float] = None) -> np.ndarray:
  """The row's video as uint8 [T, size, size, 3] RGB at `frame_rate` Hz.

  A video file is decoded with PyAV (its first video stream; frame times
  from its timestamps, counted from its first frame); a frame folder's
  images (`frame_files`) are read with Pillow, image i shown at i /
  `folder_rate` s. Either is resampled with `resample_indices` (1 <= T <=
  ceil(max_seconds * frame_rate)), each frame converted to RGB and resized
  with Pillow's bicubic filter. Frames past `max_seconds` are not decoded.
  (See `mmjax.data.manifest_video`.)

  Args:
    manifest: the manifest.
    row: a row of it, with a video column.
    frame_rate: stored frames per second (Hz).
    size: S of the stored [S, S, 3] frames (pixels).
    max_seconds: the stored clip is at most this long (s).
    folder_rate: frames per second of a frame folder; None: `frame_rate`.

  Raises:
    DataError: naming the row and file: missing; a file PyAV cannot open or
      decode, or without a video stream or frames; a folder without frame
      files; a frame file that is not a readable `FRAME_FORMATS` image
      (naming that file).
  """
  path = manifest.file(row, "video")
  with _decoding(manifest, row, "video", _VIDEO_EXPECTED):
    if path.is_dir():
      return manifest_video.read_frame_folder(
          path, frame_rate, size, max_seconds, folder_rate or frame_rate)
    if not path.is_file():
      raise _missing(manifest, row, "video")
    return manifest_video.read_video_file(path, frame_rate, size,
                                          max_seconds)


def _stat_line(name: str, path: Path) -> bytes:
  stat = path.stat()
  return f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode()


def fingerprint(manifest: Manifest, missing_ok: bool = False) -> str:
  """Content fingerprint of a manifest and the files it names.

  sha256 over the manifest's bytes and, for each distinct file it names (in
  row order), the path as written, its size in bytes and its modification
  time (ns), and so for each frame of a frame folder (`frame_files`):
  editing the manifest or touching a file changes it.

  Returns:
    16 lowercase hex characters.

  Raises:
    DataError: naming the row and file, for a file that does not exist
      (unless `missing_ok`: then its absence is part of the fingerprint).
  """
  digest = hashlib.sha256(manifest.path.read_bytes())
  seen = set()
  for row in manifest.rows:
    for column in FILE_MODALITIES:
      if column not in manifest.columns or row.values[column] in seen:
        continue
      seen.add(row.values[column])
      path = manifest.file(row, column)
      try:
        digest.update(_stat_line(row.values[column], path))
        if column == "video" and path.is_dir():
          for frame in frame_files(path):
            digest.update(_stat_line(f"{row.values[column]}/{frame.name}",
                                     frame))
      except OSError as e:
        if not missing_ok:
          raise _missing(manifest, row, column) from e
        digest.update(f"{row.values[column]}\tmissing\n".encode())
  return digest.hexdigest()[:16]


# The builder.


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
    modalities: the dataset's modalities (`modalities_of`: its modality
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
    fingerprint: `fingerprint(manifest)`.
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
    the audio (`modalities_of`). `frame_folder_rate` None means
    `frame_rate`.

    Raises:
      ValueError: for image_size, sample_rate or video_size not an int >= 1,
        frame_rate, max_video_seconds or frame_folder_rate not > 0,
        video_soundtrack not a bool, bad fractions, or `bad_examples` not in
        BAD_EXAMPLES.
      DataError: for missing files, images of different sizes, unreadable
        video files or mixed soundtracks (see `modalities_of`), naming the
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
      shape = (size, size) if size else image_shape(manifest, skip)
    modalities = modalities_of(manifest, video_soundtrack)
    fields = {"manifest": os.fspath(manifest.path),
              "modalities": list(modalities), "image_size": size,
              "image_shape": list(shape), "sample_rate": int(sample_rate),
              "split_fractions": [float(f) for f in split_fractions],
              "split_seed": int(split_seed),
              "fingerprint": fingerprint(manifest, missing_ok=skip)}
    if skip:  # (not in the fields otherwise: names prepared before it stay)
      fields["bad_examples"] = bad_examples
    if "video" in manifest.modalities:
      fields.update(frame_rate=float(frame_rate), video_size=int(video_size),
                    max_video_seconds=float(max_video_seconds),
                    frame_folder_rate=float(frame_folder_rate or frame_rate))
    if _soundtracks_apply(manifest, True):
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
                  "image_shape": tuple(shape),
                  "split_fractions": tuple(fields["split_fractions"])})


class MultimodalManifest(LocalFilesBuilder):
  """The examples of a manifest (see the module docstring); needs a
  `ManifestConfig` (build it with `get_builder`)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  @property
  def _config(self) -> ManifestConfig:
    if not isinstance(self.builder_config, ManifestConfig):
      raise ValueError("MultimodalManifest needs a ManifestConfig: use "
                       "mmjax.data.manifest.get_builder(manifest, ...)")
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
    manifest = read_manifest(config.manifest)
    actual = fingerprint(manifest, missing_ok=config.bad_examples == "skip")
    if actual != config.fingerprint:
      raise DataError(
          f"{manifest.path}: the manifest or its files changed since the "
          f"config was made (fingerprint {actual}, config "
          f"{config.fingerprint}); call get_builder(...) again.")
    return manifest

  def _train_tokenizer(self, texts: Sequence[str]) -> int:
    """Trains and saves the tokenizer; returns its vocabulary size."""
    tokenizer = emoji.train_tokenizer(texts, VOCAB_SIZE)
    tokenizer.save_pretrained(os.fspath(Path(self.data_dir) / TOKENIZER_DIR))
    return len(tokenizer)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing is downloaded.
    config = self._config
    manifest = self._read_checked_manifest()
    splits = assign_splits(manifest, config.split_fractions, config.split_seed)
    self.info.features["label"].names = list(manifest.labels)
    rows_of = {s: [r for r, rs in zip(manifest.rows, splits) if rs == s]
               for s in SPLITS}
    metadata = {"manifest": os.fspath(manifest.path),
                "num_examples": {s: len(rows_of[s]) for s in SPLITS}}
    if "text" in manifest.modalities:
      start = time.perf_counter()
      metadata["tokenizer_dir"] = TOKENIZER_DIR
      metadata["tokenizer_vocab_size"] = self._train_tokenizer(
          [r.values["text"] for r in rows_of["train"]])
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
    metadata `skipped_examples[split]` (its DataError messages)."""
    skipped = []
    for row in rows:
      try:
        example = self._read_example(manifest, row)
      except DataError as e:
        if self._config.bad_examples != "skip":
          raise
        logging.warning("Skipped (bad_examples='skip'): %s", e)
        skipped.append(str(e))
        continue
      yield row.number, example
    self.info.metadata.setdefault("skipped_examples", {})[split] = skipped

  def _read_example(self, manifest: Manifest, row: Row) -> dict:
    config = self._config
    example = {"label": row.values[LABEL], "row": row.number}
    if "image" in config.modalities:
      example["image"] = read_image(manifest, row, config.image_size)
    if "audio" in manifest.columns:
      example["audio"] = read_audio(manifest, row, config.sample_rate)
    elif "audio" in config.modalities:
      example["audio"] = read_soundtrack(manifest, row, config.sample_rate,
                                         config.max_video_seconds)
    if "text" in config.modalities:
      example["text"] = row.values["text"]
    if "video" in config.modalities:
      example["video"] = read_video(
          manifest, row, config.frame_rate, config.video_size,
          config.max_video_seconds, config.frame_folder_rate)
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
    manifest: the `.csv` / `.jsonl` manifest (see the module docstring).
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
      `read_video`).
    video_size: S of the stored uint8 [T, S, S, 3] video frames (pixels).
    max_video_seconds: the stored videos are cut to their first this many
      seconds.
    frame_folder_rate: frames per second (Hz) of the images of a frame
      folder; None: `frame_rate` (one stored frame per image).
    video_soundtrack: with a video column and no audio column, the audio
      is the video files' soundtracks (`read_soundtrack`) when every one
      has one (see `modalities_of`); False: no audio.
    bad_examples: "fail" or "skip" rows with a missing or undecodable file
      (`BAD_EXAMPLES`; the video soundtrack check still fails on them).

  Returns:
    A prepared builder; read it with `builder.as_dataset(split=...)`.

  Raises:
    DataError: naming the manifest (and the line, row and file where one is
      at fault): see `read_manifest`, `assign_splits`, `image_shape`,
      `read_image`, `read_audio`, `modalities_of`, `read_soundtrack`,
      `read_video`.
    ValueError: for bad settings (see `ManifestConfig.make`).
  """
  parsed = read_manifest(manifest)
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
