"""The base of mmjax's TFDS builders, which read raw files from a local
manual directory and download nothing (`av_digits`, `emoji_image_text`)."""

import functools
import inspect
import os
import time
from typing import Optional

from absl import logging
from etils import epath
import tensorflow as tf
import tensorflow_datasets as tfds


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
