"""Readers of the raw MNIST (IDX) and FSDD (WAV) files in a manual directory.

Numpy only (no TensorFlow), so that the readers can be used and tested without
building a dataset. Every problem with the input files raises `DataError`
naming the file and what was expected.

Expected layout of the manual directory (the one of `../shared/data`, see its
README.md):

    <manual_dir>/mnist/t10k-first8000-images-idx3-ubyte.gz
    <manual_dir>/mnist/t10k-first8000-labels-idx1-ubyte.gz
    <manual_dir>/fsdd/recordings/{digit}_{speaker}_{index}.wav
"""

import gzip
import io
from pathlib import Path
import re
import struct
from typing import List, NamedTuple, Optional, Tuple
import warnings
import zlib

import librosa
import numpy as np
import soundfile as sf

from mmjax.data.builders.base import PathLike
from mmjax.data.errors import DataConversionWarning
from mmjax.data.errors import DataError

MNIST_IMAGES = "mnist/t10k-first8000-images-idx3-ubyte.gz"
MNIST_LABELS = "mnist/t10k-first8000-labels-idx1-ubyte.gz"
FSDD_RECORDINGS = "fsdd/recordings"
SAMPLE_RATE = 8000
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
LAYOUT = f"""\
Expected layout of the manual directory (documented in ../shared/data/README.md
of the mmjax checkout):
  <manual_dir>/{MNIST_IMAGES}
      MNIST test-set images, IDX format (uint8, N x 28 x 28), gzip.
  <manual_dir>/{MNIST_LABELS}
      MNIST test-set labels, IDX format (uint8, N), gzip.
  <manual_dir>/{FSDD_RECORDINGS}/{{digit}}_{{speaker}}_{{index}}.wav
      Free Spoken Digit Dataset recordings (mono 16-bit PCM, 8000 Hz).
Where to get them:
  MNIST: {MNIST_URL} (t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz;
      mmjax uses the first 8,000 images, re-packed with the header counts
      updated; the full files under the names above also work).
  FSDD: {FSDD_URL} (the recordings/ folder).
"""

_IDX_UINT8 = 0x08
_IDX_MAGIC_NAMES = {1: "labels", 3: "images"}
_GZIP_MAGIC = b"\x1f\x8b"
_FSDD_NAME = re.compile(
    r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z0-9-]+)_(?P<index>0|[1-9][0-9]*)"
    r"\.wav$")
_WAV_EXPECTED = "expected a 16-bit PCM WAV file (RIFF/WAVE)"
_UNKNOWN_CHUNK_SIZE = 0xFFFFFFFF


def _read_bytes(path: Path, expected: str) -> bytes:
  try:
    return path.read_bytes()
  except OSError as e:
    raise DataError(f"{path}: cannot read the file ({e}); {expected}.") from e


def _gunzip(path: Path, raw: bytes) -> bytes:
  if raw[:2] != _GZIP_MAGIC:
    raise DataError(f"{path}: not a gzip file; expected a gzip-compressed IDX "
                    "file (or drop the .gz suffix for a plain one).")
  try:
    return gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(
        f"{path}: corrupt or truncated gzip data ({e}); expected a "
        "gzip-compressed IDX file.") from e


def _idx_magic(ndim: int) -> str:
  return f"0x{_IDX_UINT8 << 8 | ndim:08x}"


def _parse_idx_header(path: Path, data: bytes,
                      ndim: Optional[int]) -> Tuple[int, ...]:
  """Returns the sizes in the IDX header, checked against the data length."""
  if len(data) < 4:
    raise DataError(f"{path}: {len(data)} bytes is too short for an IDX "
                    "header (4-byte magic, then one uint32 size per dim).")
  zero, dtype, file_ndim = struct.unpack(">HBB", data[:4])
  wanted = [ndim] if ndim is not None else sorted(_IDX_MAGIC_NAMES)
  if zero != 0 or dtype != _IDX_UINT8 or file_ndim == 0 or (
      ndim is not None and file_ndim != ndim):
    expected = " or ".join(
        f"{_idx_magic(n)} ({_IDX_MAGIC_NAMES.get(n, f'{n}-d')}, uint8)"
        for n in wanted)
    raise DataError(
        f"{path}: wrong IDX magic number 0x{data[:4].hex()}; expected "
        f"{expected}.")
  header_len = 4 + 4 * file_ndim
  if len(data) < header_len:
    raise DataError(f"{path}: truncated IDX header; expected {header_len} "
                    f"header bytes for {file_ndim} dims, got {len(data)}.")
  sizes = struct.unpack(f">{file_ndim}I", data[4:header_len])
  expected_bytes = int(np.prod(sizes, dtype=np.int64))
  actual_bytes = len(data) - header_len
  if expected_bytes != actual_bytes:
    raise DataError(
        f"{path}: the IDX header's sizes {sizes} need {expected_bytes} data "
        f"bytes but the file has {actual_bytes}.")
  return sizes


def read_idx(path: PathLike, ndim: Optional[int] = None) -> np.ndarray:
  """Reads a uint8 IDX file (the MNIST format), gzip-compressed or plain.

  Format (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"): a big-endian
  header of two zero bytes, the dtype code 0x08 (uint8), the number of dims
  `ndim`, then `ndim` uint32 sizes; then the data in C order. The magic number
  is thus 0x00000801 for labels and 0x00000803 for images.

  Args:
    path: the file; gzip-compressed if its name ends with `.gz`.
    ndim: if given, the number of dims the file must have.

  Returns:
    uint8 array whose shape is the header's sizes, e.g. [N, 28, 28].

  Raises:
    DataError: naming the file, if it cannot be read, is not valid gzip (for
      `.gz`), has a wrong magic number (or not `ndim` dims), or the header's
      sizes do not match the number of data bytes (expected vs actual bytes).
  """
  path = Path(path)
  data = _read_bytes(path, "expected an IDX file")
  if path.suffix == ".gz":
    data = _gunzip(path, data)
  sizes = _parse_idx_header(path, data, ndim)
  array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(sizes))
  return array.reshape(sizes).copy()


def load_mnist(manual_dir: PathLike) -> Tuple[np.ndarray, np.ndarray]:
  """Loads the MNIST images and labels from `manual_dir/mnist/`.

  Args:
    manual_dir: the manual directory (see `LAYOUT`).

  Returns:
    (images, labels): uint8 [N, 28, 28] with pixel values 0-255 (0 is
    background), uint8 [N] with values 0-9.

  Raises:
    DataError: naming the file, if a file is missing or malformed (see
      `read_idx`), images are not 28x28, the image and label counts differ, or
      a label is outside 0-9.
  """
  images_path = Path(manual_dir) / MNIST_IMAGES
  labels_path = Path(manual_dir) / MNIST_LABELS
  images = read_idx(images_path, ndim=3)
  labels = read_idx(labels_path, ndim=1)
  if images.shape[1:] != IMAGE_SHAPE:
    raise DataError(f"{images_path}: images are {images.shape[1:]}; expected "
                    f"{IMAGE_SHAPE}.")
  if len(images) != len(labels):
    raise DataError(
        f"{images_path} has {len(images)} images but {labels_path} has "
        f"{len(labels)} labels; expected the same count.")
  if labels.size and labels.max() >= NUM_CLASSES:
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    raise DataError(
        f"{labels_path}: {bad.size} labels outside 0-{NUM_CLASSES - 1} (first "
        f"at index {bad[0]}: {labels[bad[0]]}).")
  return images, labels


def _check_wav_chunks(path: Path, raw: bytes) -> None:
  """Checks the RIFF/WAVE framing, which soundfile does not fully check.

  soundfile (libsndfile) silently reads a file cut inside its data chunk, so a
  truncated download would yield a short recording instead of an error.
  """
  if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
    raise DataError(f"{path}: not a WAV file (no RIFF/WAVE header); "
                    f"{_WAV_EXPECTED}.")
  pos = 12
  while pos + 8 <= len(raw):
    chunk_id = raw[pos:pos + 4]
    (size,) = struct.unpack("<I", raw[pos + 4:pos + 8])
    available = len(raw) - pos - 8
    if chunk_id == b"data":
      if size != _UNKNOWN_CHUNK_SIZE and size > available:
        raise DataError(
            f"{path}: truncated WAV file: its data chunk declares {size} "
            f"bytes but only {available} follow; {_WAV_EXPECTED}.")
      return
    pos += 8 + size + (size & 1)
  raise DataError(f"{path}: truncated WAV file (no data chunk); "
                  f"{_WAV_EXPECTED}.")


def _decode_wav(path: Path, raw: bytes) -> Tuple[np.ndarray, int, str]:
  """Returns (samples [frames, channels], sample rate, subtype)."""
  try:
    with sf.SoundFile(io.BytesIO(raw)) as f:
      dtype = "int16" if f.subtype == "PCM_16" else "float64"
      return f.read(dtype=dtype, always_2d=True), f.samplerate, f.subtype
  except (sf.SoundFileError, RuntimeError, TypeError) as e:
    raise DataError(f"{path}: cannot decode ({e}); {_WAV_EXPECTED}.") from e


def _to_int16(samples: np.ndarray) -> Tuple[np.ndarray, int]:
  """Float in [-1, 1) -> int16, clipping; returns (int16 samples, #clipped)."""
  scaled = np.round(samples * 32768.0)
  clipped = np.count_nonzero((scaled < -32768) | (scaled > 32767))
  return np.clip(scaled, -32768, 32767).astype(np.int16), clipped


def read_wav(path: PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """Reads a WAV recording as mono int16 samples at `sample_rate`.

  The expected input is what FSDD distributes: a RIFF/WAVE file, mono, 16-bit
  PCM, at `sample_rate` Hz; it is returned unchanged. Other WAV files are
  fixed, with one `DataConversionWarning` per file naming all fixes:
    * several channels are downmixed to mono by averaging them;
    * another sample rate is resampled to `sample_rate` with
      `librosa.resample(res_type="soxr_hq")`;
    * float or other PCM widths (8/24/32-bit) are converted to int16
      (x * 32768, rounded, clipped to [-32768, 32767]).

  Args:
    path: the .wav file.
    sample_rate: the sample rate of the result, in Hz.

  Returns:
    int16 [samples] (at `sample_rate` Hz; at least one sample).

  Raises:
    DataError: naming the file and saying a 16-bit PCM WAV was expected, if
      it cannot be read, is not a RIFF/WAVE file, is truncated (the data chunk
      declares more bytes than the file has), cannot be decoded by soundfile,
      or has no samples.
  """
  path = Path(path)
  raw = _read_bytes(path, _WAV_EXPECTED)
  _check_wav_chunks(path, raw)
  samples, file_rate, subtype = _decode_wav(path, raw)
  if samples.shape[0] == 0:
    raise DataError(f"{path}: the recording has no samples; {_WAV_EXPECTED}.")
  fixes = []
  if samples.shape[1] > 1:
    fixes.append(f"downmixed {samples.shape[1]} channels to mono")
  if file_rate != sample_rate:
    fixes.append(f"resampled {file_rate} Hz to {sample_rate} Hz")
  if subtype != "PCM_16":
    fixes.append(f"converted {subtype} samples to int16")
  if not fixes:
    return samples[:, 0]
  if samples.dtype == np.int16:
    samples = samples / 32768.0
  mono = samples.mean(axis=1)
  if file_rate != sample_rate:
    mono = librosa.resample(
        mono, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq")
  result, clipped = _to_int16(mono)
  if clipped:
    fixes.append(f"clipped {clipped} samples to the int16 range")
  if result.size == 0:
    raise DataError(f"{path}: the recording has no samples after resampling; "
                    f"{_WAV_EXPECTED}.")
  warnings.warn(f"{path}: {'; '.join(fixes)}.", DataConversionWarning,
                stacklevel=2)
  return result


class Recording(NamedTuple):
  """One FSDD recording, parsed from its file name.

  Attributes:
    digit: the spoken digit, 0-9 (the label).
    speaker: the speaker's name, e.g. "theo".
    index: the take number of this digit by this speaker (0-49 in FSDD).
    file_name: `{digit}_{speaker}_{index}.wav`, relative to fsdd/recordings/.
  """
  digit: int
  speaker: str
  index: int
  file_name: str


def parse_recording_name(file_name: str) -> Recording:
  """Parses `{digit}_{speaker}_{index}.wav` (FSDD's naming).

  Raises:
    DataError: naming the file, if the name does not match.
  """
  match = _FSDD_NAME.match(file_name)
  if not match:
    raise DataError(
        f"{file_name}: not an FSDD recording name; expected "
        "{digit}_{speaker}_{index}.wav with digit 0-9, speaker letters/digits/"
        "'-', index a non-negative integer.")
  return Recording(int(match["digit"]), match["speaker"], int(match["index"]),
                   file_name)


def list_fsdd(manual_dir: PathLike) -> List[Recording]:
  """Lists the FSDD recordings in `manual_dir/fsdd/recordings/`.

  Hidden files (names starting with ".") are ignored; every other entry must
  be a recording named `{digit}_{speaker}_{index}.wav`. Nothing is decoded.

  Args:
    manual_dir: the manual directory (see `LAYOUT`).

  Returns:
    The recordings, sorted by file name.

  Raises:
    DataError: if the folder is missing, or naming the entries whose names do
      not match.
  """
  folder = Path(manual_dir) / FSDD_RECORDINGS
  if not folder.is_dir():
    raise DataError(f"{folder}: missing folder of FSDD recordings.\n{LAYOUT}")
  names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
  recordings, bad = [], []
  for name in names:
    try:
      recordings.append(parse_recording_name(name))
    except DataError:
      bad.append(name)
  if bad:
    shown = ", ".join(bad[:10]) + (", ..." if len(bad) > 10 else "")
    raise DataError(
        f"{folder}: {len(bad)} entries are not named "
        f"{{digit}}_{{speaker}}_{{index}}.wav: {shown}")
  return recordings


def check_manual_dir(manual_dir: PathLike) -> None:
  """Checks that every file the dataset needs is in `manual_dir`.

  Checks existence only (cheap); the readers check the contents.

  Args:
    manual_dir: the manual directory (see `LAYOUT`).

  Raises:
    DataError: listing every missing file or folder (the MNIST images and
      labels, fsdd/recordings/ with at least one .wav), where to get them and
      the expected layout.
  """
  root = Path(manual_dir)
  missing = [str(root / name) for name in (MNIST_IMAGES, MNIST_LABELS)
             if not (root / name).is_file()]
  recordings = root / FSDD_RECORDINGS
  if not recordings.is_dir():
    missing.append(f"{recordings}/ (folder of *.wav)")
  elif not any(recordings.glob("*.wav")):
    missing.append(f"{recordings}/*.wav (the folder has no recordings)")
  if missing:
    listing = "\n".join(f"  - {m}" for m in missing)
    raise DataError(
        f"The manual data directory {root} is incomplete. Missing:\n"
        f"{listing}\n{LAYOUT}")
