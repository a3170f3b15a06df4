"""Dataset registry: `config.data.name` -> a prepared TFDS builder.

Each dataset module of this package registers its own factory
`from_config(data_config) -> prepared builder` in `DATASETS`, which imports
them all on its first lookup.
"""

import jax
from jax.experimental import multihost_utils
import ml_collections
import tensorflow_datasets as tfds

from mmjax.registry import Registry

DATASETS = Registry("dataset", package="mmjax.data.builders")


def get_builder(data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Prepares (once) and returns the TFDS builder named by `data_config.name`.

  With several processes, process 0 prepares a missing dataset while the
  others wait at a barrier, then they open it: prepared once on a data dir
  all hosts share, or once per host on host-local data dirs, never by two
  processes writing the same folder.

  Raises:
    KeyError: for an unknown dataset name.
    mmjax.data.errors.DataError: when the raw files are missing or malformed.
  """
  make = DATASETS.get(data_config.name)
  if jax.process_count() == 1:
    return make(data_config)
  builder = make(data_config) if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices(f"mmjax: {data_config.name} prepared")
  return builder or make(data_config)
