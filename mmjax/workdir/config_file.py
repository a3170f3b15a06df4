"""The `--config` file of a trained workdir's own config: launch.py passes
`--config=<this file>:<workdir>` when a command gives `--workdir` and no
`--config`, so `--config.<key>=<value>` overrides work as with any config
file."""

import ml_collections

from mmjax.workdir import configs


def get_config(workdir: str) -> ml_collections.ConfigDict:
  """The latest config.json (config.N.json) of `workdir`, locked.

  Raises:
    FileNotFoundError: when `workdir` holds no config.json.
  """
  return configs.read_config(workdir)
