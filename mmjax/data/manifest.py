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
    `soundfile`, mixed down to mono (mean of the channels) and resampled to
    `sample_rate` Hz with `librosa.resample(res_type="soxr_hq")` when its
    own rate differs.
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

Features per example (only the modalities the manifest has):
  image: uint8 [H, W, 3]: [S, S, 3] resized with Pillow (bicubic) when
    `image_size` S is given, else the files' own size, which all images must
    share (stored as PNG).
  audio: int16 [samples] (variable length), mono at `sample_rate` Hz, as
    av_digits stores it (pp: `to_float|pad_or_crop(...)`).
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
from mmjax.data.av_digits import PathLike
from mmjax.data.av_digits import resolve_data_dir
from mmjax.data.emoji import check_fractions
from mmjax.data.errors import DataError
from mmjax.data.local_builder import LocalFilesBuilder
from mmjax.data.local_builder import prepare_once

MODALITIES = ("image", "audio", "text", "video")
LABEL = "label"
SPLIT = "split"
SPLITS = ("train", "validation", "test")
COLUMNS = MODALITIES + (LABEL, SPLIT)
FILE_MODALITIES = ("image", "audio", "video")
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF")  # Pillow's format names.
AUDIO_FORMATS = ("WAV", "FLAC", "OGG")  # soundfile's format names.
FRAME_FORMATS = ("PNG", "JPEG", "BMP")  # Of a folder of frames (Pillow's).
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# Video timestamps converted from a rational time base to float seconds may
# be a bit off; a frame counts as shown at time t when it starts by t + this.
TIME_TOLERANCE = 1e-6  # seconds
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
_AUDIO_EXPECTED = "a WAV, FLAC or OGG recording"
_VIDEO_EXPECTED = ("a video file that PyAV (FFmpeg) decodes, e.g. MP4, WebM, "
                   "AVI, MKV or MOV, or a folder of PNG, JPEG or BMP frames")
_FRAME_EXPECTED = "a PNG, JPEG or BMP image (a frame of the video)"


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


def image_shape(manifest: Manifest) -> Tuple[int, int]:
  """(height, width) shared by all the manifest's images (headers only).

  Raises:
    DataError: naming the row and file of a missing or unreadable image, or
      of the first image whose size differs from the first row's.
  """
  first, shape = None, None
  for row in manifest.rows:
    with _open_image(manifest, row) as image:
      this = (image.height, image.width)
    if shape is None:
      first, shape = row, this
    elif this != shape:
      raise DataError(
          f"{manifest.where(row, 'image')}: {manifest.file(row, 'image')} "
          f"is {this[1]} x {this[0]} pixels but the image of line "
          f"{first.line} (row {first.number}) is {shape[1]} x {shape[0]}; "
          f"images must share one size, or set image_size to resize them.")
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


def read_audio(manifest: Manifest, row: Row, sample_rate: int) -> np.ndarray:
  """The row's recording as int16 [samples], mono at `sample_rate` Hz.

  Decoded as float64 by soundfile, channels averaged, resampled with
  `librosa.resample(res_type="soxr_hq")` if the file's rate differs, then
  `to_int16` (so 16-bit mono files at `sample_rate` are returned exactly).

  Raises:
    DataError: naming the row and file, if missing, not of `AUDIO_FORMATS`,
      undecodable, or without samples.
  """
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  path = manifest.file(row, "audio")
  if not path.is_file():
    raise _missing(manifest, row, "audio")
  try:
    with sf.SoundFile(path) as f:
      if f.format not in AUDIO_FORMATS:
        raise _unreadable(manifest, row, "audio", f"a {f.format} file",
                          _AUDIO_EXPECTED)
      samples, rate = f.read(dtype="float64", always_2d=True), f.samplerate
  except (sf.SoundFileError, RuntimeError, TypeError) as e:
    raise _unreadable(manifest, row, "audio", str(e), _AUDIO_EXPECTED) from e
  if not samples.size:
    raise _unreadable(manifest, row, "audio", "no samples", _AUDIO_EXPECTED)
  mono = samples.mean(axis=1)
  if rate != sample_rate:
    import librosa  # pylint: disable=g-import-not-at-top
    mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate,
                            res_type="soxr_hq")
  return to_int16(mono)


def resample_indices(times: Sequence[float], duration: float,
                     frame_rate: float, max_seconds: float) -> np.ndarray:
  """The source frame shown at each frame of a constant frame rate.

  Output frame k is at k / frame_rate seconds (k = 0, 1, ...) and shows the
  last source frame whose time is <= that (up to `TIME_TOLERANCE`; the
  first frame if none is). There are ceil(min(duration, max_seconds) *
  frame_rate) output frames (up to the tolerance), at least one.

  Args:
    times: float [n >= 1], seconds from the clip's start to each source
      frame's presentation, non-decreasing.
    duration: seconds from the clip's start to the end of its last frame.
    frame_rate: output frames per second (Hz), > 0.
    max_seconds: the output covers at most this many seconds, > 0.

  Returns:
    int64 [num_output_frames], indices into `times`.
  """
  seconds = min(duration, max_seconds) - TIME_TOLERANCE
  count = max(1, math.ceil(seconds * frame_rate))
  shown_at = np.arange(count) / frame_rate + TIME_TOLERANCE
  indices = np.searchsorted(np.asarray(times, np.float64), shown_at,
                            side="right") - 1
  return np.maximum(indices, 0).astype(np.int64)


def _square_rgb(image, size: int) -> np.ndarray:
  """A Pillow image as uint8 [size, size, 3] RGB (bicubic)."""
  import PIL.Image  # pylint: disable=g-import-not-at-top
  square = image.convert("RGB").resize((size, size),
                                       PIL.Image.Resampling.BICUBIC)
  return np.asarray(square, dtype=np.uint8)


def frame_files(folder: Path) -> List[Path]:
  """The frames of a frame folder: its files with a `FRAME_SUFFIXES`
  suffix (any case), not hidden, sorted by name."""
  return sorted(
      (f for f in folder.iterdir() if f.suffix.lower() in FRAME_SUFFIXES
       and not f.name.startswith(".") and f.is_file()),
      key=lambda f: f.name)


def _read_frame(manifest: Manifest, row: Row, path: Path,
                size: int) -> np.ndarray:
  """One image of a frame folder as uint8 [size, size, 3]."""
  import PIL.Image  # pylint: disable=g-import-not-at-top
  try:
    image = PIL.Image.open(path)
  except (OSError, PIL.UnidentifiedImageError) as e:
    raise _unreadable(manifest, row, "video", str(e), _FRAME_EXPECTED,
                      path) from e
  with image:
    if image.format not in FRAME_FORMATS:
      raise _unreadable(manifest, row, "video", f"a {image.format} image",
                        _FRAME_EXPECTED, path)
    try:
      return _square_rgb(image, size)  # Decodes: a corrupt file fails here.
    except (OSError, ValueError) as e:
      raise _unreadable(manifest, row, "video", str(e), _FRAME_EXPECTED,
                        path) from e


def _read_frame_folder(manifest: Manifest, row: Row, frame_rate: float,
                       size: int, max_seconds: float,
                       folder_rate: float) -> np.ndarray:
  """A frame folder, its images at `folder_rate` Hz, resampled."""
  files = frame_files(manifest.file(row, "video"))
  if not files:
    raise _unreadable(manifest, row, "video",
                      "a folder without PNG, JPEG or BMP files",
                      _VIDEO_EXPECTED)
  indices = resample_indices(np.arange(len(files)) / folder_rate,
                             len(files) / folder_rate, frame_rate, max_seconds)
  frames = {i: _read_frame(manifest, row, files[i], size)
            for i in np.unique(indices)}  # Only the frames shown are read.
  return np.stack([frames[i] for i in indices])


def _frame_timing(frame, index: int, rate) -> Optional[Tuple[float, float]]:
  """(start, duration) in seconds of a decoded PyAV frame, the `index`-th
  of its stream at `rate` (a Fraction, or None), from its timestamps, else
  from the stream's rate; None without either."""
  period = 1.0 / float(rate) if rate else None
  if frame.pts is not None and frame.time_base:
    start = float(frame.pts * frame.time_base)
  elif period is not None:
    start = index * period
  else:
    return None
  if frame.duration and frame.time_base:
    return start, float(frame.duration * frame.time_base)
  return start, period or 0.0


def _decode_video_file(manifest: Manifest, row: Row, size: int,
                       max_seconds: float
                       ) -> Tuple[List[np.ndarray], List[float], float]:
  """(frames uint8 [size, size, 3], their times in s from the first
  frame, the end of the last one in s) of the row's video file's first
  video stream, decoded up to `max_seconds`."""
  import av  # pylint: disable=g-import-not-at-top
  import PIL.Image  # pylint: disable=g-import-not-at-top
  path = manifest.file(row, "video")
  frames, times, end = [], [], 0.0
  try:
    with av.open(os.fspath(path)) as container:
      if not container.streams.video:
        raise _unreadable(manifest, row, "video", "no video stream",
                          _VIDEO_EXPECTED)
      stream = container.streams.video[0]
      rate = stream.average_rate or stream.guessed_rate
      first = None
      for frame in container.decode(stream):
        timing = _frame_timing(frame, len(frames), rate)
        if timing is None:
          raise _unreadable(manifest, row, "video",
                            "frames without timestamps or frame rate",
                            _VIDEO_EXPECTED)
        first = timing[0] if first is None else first
        start = timing[0] - first
        if start >= max_seconds:
          break
        times.append(start)
        end = max(end, start + timing[1])
        frames.append(_square_rgb(PIL.Image.fromarray(
            frame.to_ndarray(format="rgb24")), size))
  except (av.FFmpegError, OSError) as e:
    reason = getattr(e, "strerror", None) or str(e)  # Without the path.
    raise _unreadable(manifest, row, "video", reason, _VIDEO_EXPECTED) from e
  if not frames:
    raise _unreadable(manifest, row, "video", "no frames", _VIDEO_EXPECTED)
  return frames, times, end


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
  if path.is_dir():
    return _read_frame_folder(manifest, row, frame_rate, size, max_seconds,
                              folder_rate or frame_rate)
  if not path.is_file():
    raise _missing(manifest, row, "video")
  frames, times, end = _decode_video_file(manifest, row, size, max_seconds)
  order = np.argsort(times, kind="stable")  # Presentation order.
  indices = resample_indices(np.asarray(times)[order], end, frame_rate,
                             max_seconds)
  return np.stack([frames[order[i]] for i in indices])


def _stat_line(name: str, path: Path) -> bytes:
  stat = path.stat()
  return f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode()


def fingerprint(manifest: Manifest) -> str:
  """Content fingerprint of a manifest and the files it names.

  sha256 over the manifest's bytes and, for each distinct file it names (in
  row order), the path as written, its size in bytes and its modification
  time (ns), and so for each frame of a frame folder (`frame_files`):
  editing the manifest or touching a file changes it.

  Returns:
    16 lowercase hex characters.

  Raises:
    DataError: naming the row and file, for a file that does not exist.
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
        raise _missing(manifest, row, column) from e
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
  column), so a different manifest, content or setting never shares a
  prepared directory.

  Attributes:
    manifest: the manifest's absolute path.
    modalities: its modality columns, in `MODALITIES` order.
    image_size: S when images are resized to [S, S, 3]; 0 keeps their size.
    image_shape: (H, W) of the stored images; (0, 0) without images.
    sample_rate: Hz of the stored audio.
    frame_rate: frames per second of the stored videos (Hz).
    video_size: V of the stored [T, V, V, 3] videos (pixels).
    max_video_seconds: the stored videos are at most this long (s).
    frame_folder_rate: frames per second of a frame folder's images (Hz).
    split_fractions: (train, validation, test) when there is no split column.
    split_seed: the seed of the stratified split.
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
  split_fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1)
  split_seed: int = 0
  fingerprint: str = ""

  @classmethod
  def make(cls, manifest: Manifest, image_size: Optional[int] = None,
           sample_rate: int = 8000,
           split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
           split_seed: int = 0, *, frame_rate: float = 8.0,
           video_size: int = 64, max_video_seconds: float = 10.0,
           frame_folder_rate: Optional[float] = None) -> "ManifestConfig":
    """The named config of `manifest` with these settings.

    Opens the header of every image when `image_size` is None (to find
    their common size). `frame_folder_rate` None means `frame_rate`.

    Raises:
      ValueError: for image_size, sample_rate or video_size not an int >= 1,
        frame_rate, max_video_seconds or frame_folder_rate not > 0, or bad
        fractions.
      DataError: for missing files or images of different sizes (naming the
        row and file).
    """
    for key, value, integer in (
        ("image_size", image_size, True), ("sample_rate", sample_rate, True),
        ("video_size", video_size, True), ("frame_rate", frame_rate, False),
        ("max_video_seconds", max_video_seconds, False),
        ("frame_folder_rate", frame_folder_rate, False)):
      if value is not None:
        _check_setting(key, value, integer)
    check_fractions(split_fractions)
    size = int(image_size or 0)
    shape = (0, 0)
    if "image" in manifest.modalities:
      shape = (size, size) if size else image_shape(manifest)
    fields = {"manifest": os.fspath(manifest.path),
              "modalities": list(manifest.modalities), "image_size": size,
              "image_shape": list(shape), "sample_rate": int(sample_rate),
              "split_fractions": [float(f) for f in split_fractions],
              "split_seed": int(split_seed),
              "fingerprint": fingerprint(manifest)}
    if "video" in manifest.modalities:
      fields.update(frame_rate=float(frame_rate), video_size=int(video_size),
                    max_video_seconds=float(max_video_seconds),
                    frame_folder_rate=float(frame_folder_rate or frame_rate))
    digest = hashlib.sha256(
        json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
    parts = ["-".join(manifest.modalities)]
    if "image" in manifest.modalities:
      parts.append(f"s{size}" if size else f"{shape[0]}x{shape[1]}")
    if "audio" in manifest.modalities:
      parts.append(f"sr{fields['sample_rate']}")
    if "video" in manifest.modalities:
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
    actual = fingerprint(manifest)
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
    return {s: self._generate_examples(manifest, rows_of[s])
            for s in SPLITS if rows_of[s]}

  def _generate_examples(self, manifest: Manifest, rows: List[Row]
                         ) -> Iterator[Tuple[int, dict]]:
    config = self._config
    for row in rows:
      example = {"label": row.values[LABEL], "row": row.number}
      if "image" in config.modalities:
        example["image"] = read_image(manifest, row, config.image_size)
      if "audio" in config.modalities:
        example["audio"] = read_audio(manifest, row, config.sample_rate)
      if "text" in config.modalities:
        example["text"] = row.values["text"]
      if "video" in config.modalities:
        example["video"] = read_video(
            manifest, row, config.frame_rate, config.video_size,
            config.max_video_seconds, config.frame_folder_rate)
      yield row.number, example


def get_builder(manifest: PathLike, data_dir: Optional[PathLike] = None, *,
                image_size: Optional[int] = None, sample_rate: int = 8000,
                split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
                split_seed: int = 0, frame_rate: float = 8.0,
                video_size: int = 64, max_video_seconds: float = 10.0,
                frame_folder_rate: Optional[float] = None
                ) -> MultimodalManifest:
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

  Returns:
    A prepared builder; read it with `builder.as_dataset(split=...)`.

  Raises:
    DataError: naming the manifest (and the line, row and file where one is
      at fault): see `read_manifest`, `assign_splits`, `image_shape`,
      `read_image`, `read_audio`, `read_video`.
    ValueError: for bad settings (see `ManifestConfig.make`).
  """
  parsed = read_manifest(manifest)
  assign_splits(parsed, split_fractions, split_seed)  # Fails early.
  config = ManifestConfig.make(
      parsed, image_size, sample_rate, split_fractions, split_seed,
      frame_rate=frame_rate, video_size=video_size,
      max_video_seconds=max_video_seconds,
      frame_folder_rate=frame_folder_rate)
  builder = MultimodalManifest(data_dir=os.fspath(resolve_data_dir(data_dir)),
                               config=config)
  return prepare_once(builder)
