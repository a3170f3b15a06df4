"""What mmjax's TFDS builders share: they read raw files from a local manual
directory and download nothing (`av_digits`, `av_digit_clips`,
`emoji_image_text`, `multimodal_manifest`).

Holds the builder base class, the prepare-once step, where the manual and
data directories default to, and the check of split fractions.
"""

import functools
import inspect
import os
from pathlib import Path
import time
from typing import Optional, Sequence, Union

from absl import logging
from etils import epath
import tensorflow as tf
import tensorflow_datasets as tfds

PathLike = Union[str, os.PathLike]

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MANUAL_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_DATA_DIR = Path("~/tensorflow_datasets")
MANUAL_DIR_ENV = "MMJAX_MANUAL_DIR"
DATA_DIR_ENV = "MMJAX_DATA_DIR"


def resolve_manual_dir(configured: Optional[PathLike]) -> Path:
  """The manual directory holding the raw files (see `sources.LAYOUT`).

  Precedence: `configured` if non-empty, else the environment variable
  MMJAX_MANUAL_DIR if non-empty, else `<repo root>/../shared/data`.
  Existence is not checked here (see `sources.check_manual_dir`).
  """
  value = configured or os.environ.get(MANUAL_DIR_ENV)
  return Path(value).expanduser() if value else DEFAULT_MANUAL_DIR


def resolve_data_dir(configured: Optional[PathLike]) -> Path:
  """The TFDS data directory where prepared datasets are written.

  Precedence: `configured` if non-empty, else the environment variable
  MMJAX_DATA_DIR if non-empty, else ~/tensorflow_datasets.
  """
  value = configured or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
  return Path(value).expanduser()


def check_fractions(fractions: Sequence[float]) -> None:
  """Raises ValueError unless 3 non-negative numbers summing to 1 (the
  train, validation and test shares of a split)."""
  values = tuple(float(f) for f in fractions)
  if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
    raise ValueError(f"split fractions must be 3 non-negative numbers "
                     f"(train, validation, test) summing to 1, got "
                     f"{tuple(fractions)!r}")


@functools.lru_cache(maxsize=None)
def hide_gpus_from_tensorflow() -> None:
  """Keeps TensorFlow off the GPUs (it only reads and writes files here; a GPU
  it grabbed would be unavailable to JAX). Logs a warning, harmlessly, once
  TF has initialised its devices."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError) as e:
    logging.warning("Could not hide GPUs from TensorFlow: %s", e)


class LocalFilesBuilder(tfds.core.GeneratorBasedBuilder,
                        skip_registration=True):
  """A `GeneratorBasedBuilder` that hides the GPUs from TensorFlow and whose
  `code_path` is its subclass's own file.

  Abstract (subclasses define `_info`, `_split_generators`,
  `_generate_examples`) and not registered with TFDS under a name.
  """

  def __init__(self, **kwargs):
    hide_gpus_from_tensorflow()
    super().__init__(**kwargs)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS 4.9.10's own code_path needs `importlib_resources`, which it does
    # not declare on Python >= 3.9 (tensorflow/datasets#11212).
    return epath.Path(inspect.getfile(cls))


def prepare_once(builder: tfds.core.DatasetBuilder,
                 manual_dir: Optional[os.PathLike] = None
                 ) -> tfds.core.DatasetBuilder:
  """Prepares `builder` (reading raw files from `manual_dir`, downloading
  nothing) unless its config is already prepared, and returns it.

  Raises:
    Whatever the builder's generation raises (mmjax builders: `DataError`
    naming the file at fault).
  """
  if not builder.is_prepared():
    start = time.perf_counter()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=os.fspath(manual_dir) if manual_dir else None,
            try_download_gcs=False))
    logging.info("Prepared %s in %.1f s.", builder.data_dir,
                 time.perf_counter() - start)
  return builder
