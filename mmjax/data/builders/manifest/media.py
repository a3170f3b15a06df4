"""Decoding and checking the files a manifest's rows name: images (Pillow),
audio files (soundfile, else PyAV), video files and frame folders (PyAV and
Pillow, see `video`) and the video files' soundtracks. Every problem is a
`DataError` naming the manifest line, row, column and file."""

import contextlib
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from mmjax.data.builders.manifest import video
from mmjax.data.builders.manifest.table import Manifest
from mmjax.data.builders.manifest.table import MODALITIES
from mmjax.data.builders.manifest.table import Row
from mmjax.data.errors import DataError

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF")  # Pillow's format names.
AUDIO_FORMATS = ("WAV", "FLAC", "OGG")  # soundfile's format names.


def missing_file(manifest: Manifest, row: Row, column: str) -> DataError:
  """The error of the row's file that does not exist."""
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
  """Raises `video.Unreadable` as the row's `DataError`."""
  try:
    yield
  except video.Unreadable as e:
    raise _unreadable(manifest, row, column, e.reason,
                      _FRAME_EXPECTED if e.path else expected, e.path) from e


def _open_image(manifest: Manifest, row: Row):
  """The row's image, opened (lazily) by Pillow, with its format checked."""
  import PIL.Image  # pylint: disable=g-import-not-at-top
  path = manifest.file(row, "image")
  if not path.is_file():
    raise missing_file(manifest, row, "image")
  try:
    image = PIL.Image.open(path)
  except (OSError, PIL.UnidentifiedImageError) as e:
    raise _unreadable(manifest, row, "image", str(e), _IMAGE_EXPECTED) from e
  if image.format not in IMAGE_FORMATS:
    raise _unreadable(manifest, row, "image", f"a {image.format} image",
                      _IMAGE_EXPECTED)
  return image


def image_shape(manifest: Manifest, skip_bad: bool = False) -> Tuple[int, int]:
  """(height, width) shared by all the manifest's images (headers only;
  rows with an empty image cell have none).

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
    if not manifest.has(row, "image"):
      continue
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
  `AUDIO_FORMATS`, else PyAV (`video.read_audio_stream`).

  Raises:
    video.Unreadable: for a corrupt `AUDIO_FORMATS` file, or one
      neither decodes (both reasons).
  """
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  try:
    with sf.SoundFile(path) as f:
      if f.format in AUDIO_FORMATS:
        try:
          samples = f.read(dtype="float64", always_2d=True)
        except (sf.SoundFileError, RuntimeError, TypeError) as e:
          raise video.Unreadable(str(e)) from e
        return samples.mean(axis=1), f.samplerate
      not_read = f"a {f.format} file"
  except (sf.SoundFileError, RuntimeError, TypeError) as e:
    not_read = getattr(e, "error_string", None) or str(e)
  try:
    return video.read_audio_stream(path)
  except video.Unreadable as e:
    raise video.Unreadable(
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
    raise missing_file(manifest, row, "audio")
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
  `video.read_soundtrack`), cut to its first `max_seconds` like the video,
  then as in `read_audio` (channels averaged, resampled with
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
    raise missing_file(manifest, row, "video")
  with _decoding(manifest, row, "video", _SOUNDTRACK_EXPECTED):
    mono, rate = video.read_soundtrack(path, max_seconds)
  return _stored_audio(manifest, row, "video", mono, rate, sample_rate,
                       _SOUNDTRACK_EXPECTED)


def soundtracks_apply(manifest: Manifest, video_soundtrack: bool) -> bool:
  """Whether the audio may come from the videos' soundtracks: with
  `video_soundtrack`, a video column and no audio column."""
  return (video_soundtrack and "video" in manifest.columns
          and "audio" not in manifest.columns)


def modalities_of(manifest: Manifest,
                  video_soundtrack: bool = True) -> Tuple[str, ...]:
  """The modalities of the manifest's dataset, in `MODALITIES` order.

  Its modality columns, and `audio` when the video files' soundtracks give
  it: with `video_soundtrack`, a video column and no audio column, every
  row's video file is opened with PyAV to list its streams
  (`video.has_audio_stream`: no frames are decoded; a frame folder has
  no soundtrack), until the answer is known: audio when every
  one has an audio stream, none when none has (rows without a video have
  neither, see `row_modalities`).

  Raises:
    DataError: naming the row and file, for a missing or unreadable video
      file, or (soundtracks on) the first row whose video has no audio
      stream when another row's has (naming that one too), with what to do.
  """
  if not soundtracks_apply(manifest, video_soundtrack):
    return manifest.modalities
  with_sound, without = None, None
  for row in manifest.rows:
    if not manifest.has(row, "video"):
      continue
    path = manifest.file(row, "video")
    if not path.exists():
      raise missing_file(manifest, row, "video")
    with _decoding(manifest, row, "video", _VIDEO_EXPECTED):
      if video.has_audio_stream(path):
        with_sound = with_sound or row
      else:
        without = without or row
    if with_sound and without:
      raise _mixed_soundtracks(manifest, without, with_sound)
  if without:
    return manifest.modalities
  return tuple(m for m in MODALITIES if m in manifest.modalities + ("audio",))


def row_modalities(manifest: Manifest, row: Row,
                   modalities: Sequence[str]) -> Tuple[str, ...]:
  """Which of the dataset's `modalities` (`modalities_of`) the row has: its
  non-empty modality cells, and `audio` from the video's soundtrack when
  the manifest has no audio column and the row has a video."""
  source = {"audio": "video"} if "audio" not in manifest.columns else {}
  return tuple(m for m in modalities if manifest.has(row, source.get(m, m)))


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
  images (`video.frame_files`) are read with Pillow, image i shown at i /
  `folder_rate` s. Either is resampled with `video.resample_indices` (1 <=
  T <= ceil(max_seconds * frame_rate)), each frame converted to RGB and resized
  with Pillow's bicubic filter. Frames past `max_seconds` are not decoded.
  (See `mmjax.data.builders.manifest.video`.)

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
      files; a frame file that is not a readable `video.FRAME_FORMATS` image
      (naming that file).
  """
  path = manifest.file(row, "video")
  with _decoding(manifest, row, "video", _VIDEO_EXPECTED):
    if path.is_dir():
      return video.read_frame_folder(
          path, frame_rate, size, max_seconds, folder_rate or frame_rate)
    if not path.is_file():
      raise missing_file(manifest, row, "video")
    return video.read_video_file(path, frame_rate, size, max_seconds)
