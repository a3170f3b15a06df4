"""Restoring a trained workdir's latest checkpoint for evaluation, and
`--mode=evaluate`: scoring it on every split of a dataset into a new
folder."""

from etils import epath
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from mmjax import checkpoint, objectives
from mmjax.data.errors import DataError
from mmjax.evaluation import results
from mmjax.train import loop, writers
from mmjax.workdir import assets


def evaluate_checkpoint(config: ml_collections.ConfigDict,
                        workdir: epath.PathLike) -> epath.Path:
  """Scores the latest checkpoint of `workdir` on every split of the dataset
  that `config.data` describes (e.g. another `manual_dir`).

  Results go to a new folder `<workdir>/evaluations/<dataset config>[-N]/`
  (results.json, confusion matrices, and source.json: the checkpoint step,
  the dataset and the evaluation pp, e.g. a `shift_soundtrack`, which the
  folder's name does not show, the run's assets and those the dataset
  fitted differently); nothing existing is overwritten. The input is
  preprocessed with the run's own fitted state (`W/assets`, e.g. its
  tokenizer), never with one the evaluated dataset fitted.

  Returns:
    The folder written.

  Raises:
    FileNotFoundError: when `workdir` has no checkpoint.
    ValueError: when the checkpoint does not match the config's model, or
      for an unknown config.objective.
  """
  workdir = epath.Path(workdir)
  builder, state, manager, evaluator, step = restore_for_evaluation(
      config, workdir, objectives.resolve(config))
  out_dir = new_output_dir(workdir / "evaluations" / (
      builder.builder_config.name if builder.builder_config else builder.name))
  record = assets.read_record(workdir) if assets.referenced_paths(
      config) else None
  refitted = assets.compare_with_dataset(record or {}, builder.data_dir)
  if refitted and writers.is_chief():
    print(f"The dataset {builder.data_dir} has its own "
          f"{', '.join(sorted(refitted))}, unlike the run's (fitted on other "
          f"data); the run's own in {workdir / assets.ASSETS_DIR} is used.",
          flush=True)
  results.evaluate_and_save(evaluator, state, config.eval_splits, out_dir,
                            builder.info.features["label"].names)
  if writers.is_chief():
    writers.write_json_atomic(out_dir / "source.json", {
        "checkpoint_step": step, "manual_dir": str(config.data.get("manual_dir", "")),
        "dataset": builder.info.full_name, "data_dir": str(builder.data_dir),
        "pp_eval": config.pp_eval.to_dict(), "assets": record,
        "dataset_assets_differing_from_the_run": refitted})
  manager.close()
  return out_dir


def restore_for_evaluation(config: ml_collections.ConfigDict,
                           workdir: epath.PathLike,
                           objective: objectives.Objective):
  """The latest checkpoint of `workdir` and what evaluating it needs.

  Args:
    config: the run's experiment config (its data may be another dataset).
    workdir: the trained run.
    objective: `objectives.resolve(config)`.

  Returns:
    (builder, train_state, checkpoint manager (close it), SplitEvaluator,
    checkpoint step).

  Raises:
    FileNotFoundError: when `workdir` has no finished checkpoint.
    ValueError: when the checkpoint does not match the config's model.
    DataError: when the run's assets are missing or differ from those the
      checkpoint was trained with.
  """
  workdir = epath.Path(workdir)
  if not (workdir / "checkpoints").is_dir():
    raise FileNotFoundError(
        f"no checkpoints in {workdir / 'checkpoints'}: train first with "
        f"--mode=train and the same --workdir")
  run = loop.setup(config, workdir, True, objective)
  builder, state, manager, evaluator = (run.builder, run.state, run.manager,
                                        run.evaluator)
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no finished checkpoint in {workdir / 'checkpoints'}")
  _check_assets_of_checkpoint(manager, step, run.assets, workdir)
  try:
    state = checkpoint.restore_latest_model(manager, state)
  except (ValueError, KeyError) as e:
    raise ValueError(
        f"checkpoint {workdir / 'checkpoints' / str(step)} does not match the "
        f"model of this config (config.model / config.modalities): {e}") from e
  return builder, state, manager, evaluator, step


def _check_assets_of_checkpoint(manager, step: int, record, workdir) -> None:
  """Refuses assets other than those the checkpoint was trained with (e.g.
  `W/assets` replaced by another run's).

  Raises:
    DataError: naming the asset whose fingerprint differs.
  """
  saved = checkpoint.step_metadata(manager, step).get("assets")
  if saved is None:  # a checkpoint from before mmjax recorded them
    return
  current = assets.fingerprints(record)
  for path in sorted(set(saved) | set(current)):
    if saved.get(path) != current.get(path):
      raise DataError(
          f"{epath.Path(workdir) / assets.ASSETS_DIR / path}: fingerprint "
          f"{str(current.get(path))[:12]} differs from the one checkpoint "
          f"{step} was trained with ({str(saved.get(path))[:12]})")


def new_output_dir(base: epath.PathLike) -> epath.Path:
  """Creates and returns `base`, or `base-1`, `base-2`, ... if it exists, so
  an earlier evaluation is never overwritten.

  With several processes, process 0 picks and creates the folder and
  broadcasts its number, so every process gets the same folder (no race).
  """
  base = epath.Path(base)
  n = 0
  if writers.is_chief():
    while (base if n == 0 else base.with_name(f"{base.name}-{n}")).exists():
      n += 1
  if jax.process_count() > 1:
    n = int(multihost_utils.broadcast_one_to_all(np.int32(n)))
  out_dir = base if n == 0 else base.with_name(f"{base.name}-{n}")
  if writers.is_chief():
    out_dir.mkdir(parents=True)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"new_output_dir {out_dir}")
  return out_dir
