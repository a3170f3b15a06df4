"""Checks of an experiment config that ml_collections' locking cannot make.

Unknown keys are already rejected by the locked ConfigDict (at the override
`--config.foo=...`); these checks catch values that are wrong together. The
checks of one objective are its `Objective.check_config` (`mmjax.objectives`).
"""

import ml_collections

from mmjax.data.pp import builder as pp_builder
from mmjax.train import balancing, corruption_training, steps


def check(config: ml_collections.ConfigDict) -> None:
  """The checks common to every objective (each `Objective.check_config`
  adds its own, `mmjax.objectives`).

  Raises:
    ValueError: naming the config key and the expected value.
  """
  if not config.modalities:
    raise ValueError("config.modalities is empty: name at least one modality")
  for m in config.modalities:
    if m not in config.model.encoders:
      raise ValueError(
          f"config.modalities has {m!r} but config.model.encoders has no "
          f"entry for it (has {sorted(config.model.encoders)})")
  for key in ("pp_train", "pp_eval"):
    for m in (*config.modalities, "example"):
      spec = config[key].get(m, "")
      if "{dataset_dir}" in spec:
        # Names files of the prepared dataset (mmjax.data.pipeline resolves
        # it): checked when the pipeline builds it.
        continue
      try:
        pp_builder.parse(spec)
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
  steps.check_train_dtype(config.dtype)
  _check_grad_accum(config)
  balancing.check_config(config)
  corruption_training.check_config(config)


def _check_grad_accum(config: ml_collections.ConfigDict) -> None:
  """`config.grad_accum_steps` (1 when absent) divides the batch size, and
  is 1 for the contrastive objective: its InfoNCE loss is not a mean over
  examples (each example's negatives are the whole global batch), so k
  micro-batches would each see only their own negatives; accumulating it
  exactly needs the embeddings of the whole batch first (GradCache, Gao et
  al. 2021), which mmjax does not implement."""
  k = config.get("grad_accum_steps", 1)
  if k < 1 or config.batch_size % k:
    raise ValueError(f"config.grad_accum_steps={k} must be a positive "
                     f"divisor of config.batch_size={config.batch_size}")
  if k > 1 and config.get("objective", "classification") == "contrastive":
    raise ValueError(
        f"config.grad_accum_steps={k} is not supported with "
        f"config.objective='contrastive': each micro-batch would see only "
        f"its own negatives; set config.grad_accum_steps=1")


# What a resumed run may not change without saying so: the learning-rate
# schedule (it depends on num_train_steps too), the global batch size, the
# seed, the data (dataset, split protocol, training pp) and the input order.
RESUME_GUARDED_KEYS = ("optimizer", "num_train_steps", "batch_size", "seed",
                       "data", "pp_train", "input")

# Guarded keys added after runs were saved without them, with the value those
# runs had: a workdir from before resumes without an error.
_VALUE_BEFORE_THE_KEY = {"input.shuffle_buffer_size": 0,
                         "input.cycle_length": 16}


def flatten(tree, prefix=""):
  """`{"a.b.c": leaf}` of a nested dict (e.g. a config's JSON)."""
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def changed_on_resume(previous: dict, current: dict) -> list:
  """The `RESUME_GUARDED_KEYS` (dotted, e.g. "optimizer.learning_rate")
  whose values differ between two resolved configs (`config.json` dicts),
  sorted; a key present in only one of them counts as changed (except the
  keys added later, read as their value before they existed)."""
  before = {**_VALUE_BEFORE_THE_KEY, **flatten(previous)}
  after = flatten(current)
  return sorted(
      k for k in set(before) | set(after)
      if k.split(".")[0] in RESUME_GUARDED_KEYS and before.get(k, None) !=
      after.get(k, None))
