"""Checks of an experiment config that ml_collections' locking cannot make.

Unknown keys are already rejected by the locked ConfigDict (at the override
`--config.foo=...`); these checks catch values that are wrong together.
"""

import ml_collections

from mmjax.data import preprocess
from mmjax.train import balancing


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the config key and the expected value."""
  if not config.modalities:
    raise ValueError("config.modalities is empty: name at least one modality")
  for m in config.modalities:
    if m not in config.model.encoders:
      raise ValueError(
          f"config.modalities has {m!r} but config.model.encoders has no "
          f"entry for it (has {sorted(config.model.encoders)})")
  for key in ("pp_train", "pp_eval"):
    for m in config.modalities:
      try:
        preprocess.parse(config[key].get(m, ""))
      except ValueError as e:
        raise ValueError(f"config.{key}.{m}: {e}") from e
  if not config.eval_splits:
    raise ValueError("config.eval_splits is empty: name the splits to "
                     "evaluate at the end, e.g. ('validation', 'test')")
  for key in ("num_train_steps", "batch_size", "eval_batch_size",
              "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
              "keep_checkpoints"):
    if config[key] <= 0:
      raise ValueError(f"config.{key} must be positive, got {config[key]}")
  balancing.check_config(config)
