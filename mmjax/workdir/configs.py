"""The config a workdir was trained with, and what an evaluation of that
workdir may change in it.

`config.json` (and `config.N.json` after a resume that changed the config)
hold `config.to_json_best_effort()`: JSON, so tuples come back as lists
(`read_config` turns every list back into a tuple, as the config files
write them).
"""

import json
from typing import Any, List, Optional

from etils import epath
import ml_collections

from mmjax.train import config_checks, writers

# What `--mode=evaluate` / `robustness` (and every mode that reads a trained
# workdir) may not change: the model and how its input is preprocessed. Any
# other key (evaluation splits, data folder, split protocol, batch sizes,
# training-only keys) may differ from the run's.
MODEL_KEYS = ("model", "modalities", "objective", "aux_loss_weight", "pp_eval",
              "zero_shot.pp", "data.name", "data.image_size",
              "data.sample_rate", "data.frame_rate", "data.video_size",
              "data.max_video_seconds", "data.frame_folder_rate",
              "data.video_soundtrack", "data.vocab_size")


def saved_configs(workdir: epath.PathLike) -> List[epath.Path]:
  """config.json, config.1.json, ... of `workdir`, oldest first."""
  workdir = epath.Path(workdir)
  found, n = [], 1
  path = workdir / "config.json"
  while path.exists():
    found.append(path)
    path = workdir / f"config.{n}.json"
    n += 1
  return found


def save_config(config: ml_collections.ConfigDict,
                workdir: epath.PathLike) -> None:
  """Writes config.json; a config that differs from every saved one (a
  resume that changed it) goes to config.N.json. Call on the chief only."""
  workdir = epath.Path(workdir)
  resolved = json.loads(config.to_json_best_effort())
  saved = saved_configs(workdir)
  if any(json.loads(p.read_text()) == resolved for p in saved):
    return
  writers.write_json_atomic(
      workdir / (f"config.{len(saved)}.json" if saved else "config.json"),
      resolved)


def _tuples(value: Any) -> Any:
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


def read_config(workdir: epath.PathLike) -> ml_collections.ConfigDict:
  """The latest config `workdir` was trained with (config.N.json, else
  config.json), locked, with JSON lists as tuples.

  Raises:
    FileNotFoundError: when `workdir` holds no config.json.
    ValueError: when the file is not a JSON object.
  """
  saved = saved_configs(workdir)
  if not saved:
    raise FileNotFoundError(
        f"{epath.Path(workdir) / 'config.json'} does not exist: {workdir} is "
        f"not a trained run. Train it first (--mode=train with --config), or "
        f"pass --config")
  try:
    values = json.loads(saved[-1].read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{saved[-1]} is not valid JSON: {e}") from e
  if not isinstance(values, dict):
    raise ValueError(f"{saved[-1]} holds {type(values).__name__}, expected "
                     f"the JSON object of an experiment config")
  config = ml_collections.ConfigDict(_tuples(values))
  config.lock()
  return config


def _is_model_key(key: str) -> bool:
  return any(key == k or key.startswith(k + ".") for k in MODEL_KEYS)


def model_changes(config: ml_collections.ConfigDict,
                  workdir: epath.PathLike) -> List[str]:
  """The keys of `MODEL_KEYS` (dotted) whose values in `config` differ from
  the run's latest saved config, each as "key (run: a, here: b)", sorted."""
  run = config_checks.flatten(
      json.loads(json.dumps(read_config(workdir).to_dict())))
  here = config_checks.flatten(json.loads(config.to_json_best_effort()))
  changes = []
  for key in sorted(set(run) | set(here)):
    if _is_model_key(key) and run.get(key) != here.get(key):
      changes.append(f"{key} (run: {run.get(key, 'absent')!r}, here: "
                     f"{here.get(key, 'absent')!r})")
  return changes


def check_evaluation_config(config: ml_collections.ConfigDict,
                            workdir: epath.PathLike,
                            allow_config_change: bool = False
                            ) -> Optional[List[str]]:
  """Refuses to evaluate `workdir` with a config that changes its model or
  preprocessing (`MODEL_KEYS`); returns the changes allowed by
  `allow_config_change` (None when there are none).

  Raises:
    FileNotFoundError: when `workdir` has no config.json.
    ValueError: naming each changed key with the run's and the given value.
  """
  changes = model_changes(config, workdir)
  if changes and not allow_config_change:
    raise ValueError(
        f"this config changes the model or its preprocessing from what "
        f"{workdir} was trained with: {'; '.join(changes)}. Evaluate with "
        f"the run's own config (give only --workdir, and override only "
        f"evaluation keys such as --config.data.manual_dir, "
        f"--config.eval_splits, --config.eval_batch_size), or pass "
        f"--allow_config_change to evaluate with these changes anyway")
  return changes or None
