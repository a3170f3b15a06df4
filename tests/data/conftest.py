"""Fixtures for the data tests: a small fake manual directory and the real one.

The fake directory has the layout of ../shared/data (see
mmjax.data.builders.sources.LAYOUT) with tiny synthetic contents:
  * mnist/: 200 images (labels i % 10; pixels [0, 0] and [0, 1] hold i % 256
    and i // 256, so each image is recognisable), gzip IDX;
  * fsdd/recordings/: 2 speakers x 10 digits x 12 takes, 0.1 s of noise each
    (mono int16, 8000 Hz).
"""

import gzip
from pathlib import Path
import struct
from typing import Callable, Tuple

import numpy as np
import pytest
import soundfile as sf

from mmjax.data.builders import sources


FAKE_SPEAKERS = ("alice", "bob")
FAKE_INDICES = tuple(range(12))
FAKE_NUM_IMAGES = 200
FAKE_SAMPLES = 800  # 0.1 s at 8000 Hz.


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
  """Writes a uint8 array as an IDX file (gzip if `compress`)."""
  array = np.asarray(array, dtype=np.uint8)
  header = struct.pack(">HBB", 0, 0x08, array.ndim)
  header += struct.pack(f">{array.ndim}I", *array.shape)
  data = header + array.tobytes()
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(gzip.compress(data) if compress else data)
  return path


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = 8000,
              subtype: str = "PCM_16") -> Path:
  """Writes samples ([n] or [n, channels]) as a WAV file with soundfile."""
  path.parent.mkdir(parents=True, exist_ok=True)
  sf.write(path, samples, sample_rate, subtype=subtype, format="WAV")
  return path


def fake_images(num: int = FAKE_NUM_IMAGES) -> Tuple[np.ndarray, np.ndarray]:
  """Returns (uint8 [num, 28, 28] images, uint8 [num] labels i % 10)."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(num, 28, 28), dtype=np.uint8)
  ids = np.arange(num)
  images[:, 0, 0] = ids % 256
  images[:, 0, 1] = ids // 256
  return images, (ids % 10).astype(np.uint8)


def write_fake_manual_dir(root: Path) -> Path:
  """Writes the fake manual directory described above under `root`."""
  images, labels = fake_images()
  write_idx(root / sources.MNIST_IMAGES, images)
  write_idx(root / sources.MNIST_LABELS, labels)
  rng = np.random.default_rng(1)
  for speaker in FAKE_SPEAKERS:
    for digit in range(10):
      for index in FAKE_INDICES:
        noise = rng.integers(-3000, 3000, size=FAKE_SAMPLES, dtype=np.int16)
        write_wav(root / sources.FSDD_RECORDINGS /
                  f"{digit}_{speaker}_{index}.wav", noise)
  return root


@pytest.fixture(name="write_idx")
def write_idx_fixture() -> Callable[..., Path]:
  return write_idx


@pytest.fixture(name="write_wav")
def write_wav_fixture() -> Callable[..., Path]:
  return write_wav


@pytest.fixture
def fake_manual_dir(tmp_path: Path) -> Path:
  """A fresh fake manual directory; tests may modify it."""
  return write_fake_manual_dir(tmp_path / "manual")


@pytest.fixture(scope="session")
def shared_fake_manual_dir(tmp_path_factory) -> Path:
  """A fake manual directory shared by the session; do not modify it."""
  return write_fake_manual_dir(tmp_path_factory.mktemp("shared_manual"))
