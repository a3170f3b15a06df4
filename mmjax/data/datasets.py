"""Dataset registry: `config.data.name` -> a prepared TFDS builder."""

import ml_collections
import tensorflow_datasets as tfds

from mmjax.registry import Registry

DATASETS = Registry("dataset")


def get_builder(data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Prepares (once) and returns the TFDS builder named by `data_config.name`.

  Raises:
    KeyError: for an unknown dataset name.
    mmjax.data.errors.DataError: when the raw files are missing or malformed.
  """
  return DATASETS.get(data_config.name)(data_config)


@DATASETS.register("av_digits")
def _av_digits(data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  from mmjax.data import av_digits, splits  # pylint: disable=g-import-not-at-top
  spec = splits.SplitSpec(
      seed=data_config.pairing_seed,
      test_speakers=tuple(data_config.test_speakers),
      validation_indices=tuple(data_config.validation_indices),
      test_indices=tuple(data_config.test_indices),
      image_fractions=tuple(data_config.image_fractions),
      validation_speakers=tuple(data_config.get("validation_speakers", ())))
  return av_digits.get_builder(
      av_digits.resolve_manual_dir(data_config.manual_dir),
      av_digits.resolve_data_dir(data_config.data_dir), spec)
