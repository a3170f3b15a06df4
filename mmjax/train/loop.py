"""The one train loop shared by every experiment, and checkpoint evaluation.

`train_and_evaluate(config, workdir)` trains the model and data named by the
config, evaluates on validation during training and on every split at the
end, and resumes from the latest checkpoint in `workdir` when there is one.
What differs between objectives (`config.objective`, `mmjax.objectives`) is
picked by name in three small tables, not here: the model
(`build_model`), the train step's loss (`steps.OBJECTIVE_LOSSES`) and the
evaluator (`evaluate.make_evaluator`).
"""

import json
import pathlib
import time
from typing import Dict

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from mmjax import checkpoint, parallel, pretrained
from mmjax.data import datasets, pipeline
from mmjax.models.multimodal import build_model
from mmjax.train import config_checks, evaluate, optim, steps, writers
from mmjax.train.state import create_train_state


def _example_shapes(builder, config) -> Dict[str, jax.ShapeDtypeStruct]:
  """Global `[batch, ...]` shapes and dtypes of the model's inputs."""
  ds, _ = pipeline.eval_batches(
      builder, config.eval_splits[0], modalities=config.modalities,
      pp=config.pp_eval, global_batch_size=config.eval_batch_size)
  # A modality may be a dict of tensors (e.g. text: token_ids, token_mask).
  return {m: jax.tree.map(
              lambda s: jax.ShapeDtypeStruct((config.batch_size, *s.shape[1:]),
                                             s.dtype.as_numpy_dtype), spec)
          for m, spec in ds.element_spec.items() if m in config.modalities}


def _setup(config, workdir: pathlib.Path, read_only: bool):
  """Everything a run needs, built before anything is written to `workdir`."""
  config_checks.check(config)
  mesh = parallel.make_mesh()
  parallel.local_batch_size(config.batch_size)
  parallel.local_batch_size(config.eval_batch_size)
  builder = datasets.get_builder(config.data)
  unknown = set(config.eval_splits) - set(builder.info.splits)
  if unknown:
    raise ValueError(f"config.eval_splits has {sorted(unknown)}; the dataset "
                     f"has splits {sorted(builder.info.splits)}")
  model = build_model(config)
  tx = optim.make_optimizer(config.optimizer, config.num_train_steps,
                            optim.parameter_groups(config))
  state = create_train_state(model, _example_shapes(builder, config), tx,
                             config.seed, parallel.replicated(mesh))
  manager = checkpoint.make_manager(
      workdir / "checkpoints", keep=config.keep_checkpoints,
      read_only=read_only)
  evaluator = evaluate.make_evaluator(builder, config, mesh)
  return mesh, builder, state, manager, evaluator


def _initialize_encoders(config, state, mesh):
  """The state with the encoders that name `init_from` loaded (a fresh run
  only: a resumed run restores them from its own checkpoint)."""
  params, batch_stats, loaded = pretrained.initialize_encoders(
      config, jax.device_get(state.params), jax.device_get(state.batch_stats))
  if not loaded:
    return state
  if writers.is_chief():
    for m, source in loaded.items():
      print(f"config.model.encoders.{m} initialised from {source}", flush=True)
  sharding = parallel.replicated(mesh)
  return state.replace(params=jax.device_put(params, sharding),
                       batch_stats=jax.device_put(batch_stats, sharding))


def _save_config(config, workdir: pathlib.Path) -> None:
  """Writes config.json; a changed config on resume goes to config.N.json."""
  if not writers.is_chief():
    return
  resolved = json.loads(config.to_json_best_effort())
  path = workdir / "config.json"
  n = 1
  while path.exists():
    if json.loads(path.read_text()) == resolved:
      return
    path = workdir / f"config.{n}.json"
    n += 1
  writers.write_json_atomic(path, resolved)


def _train(config, state, batches, train_step, evaluator, manager, writer,
           start: int):
  """Steps `start + 1 .. num_train_steps`: logs, validates and checkpoints.

  Returns the final train_state and the training throughput in examples/s,
  measured from the end of the first (compiling) step to the end, without
  the time spent in validation (None when fewer than 2 steps ran).
  """
  window, t_window = [], time.perf_counter()
  t_first, t_eval = None, 0.0
  bar = tqdm(total=config.num_train_steps, initial=start, unit="step",
             disable=not writers.is_chief(), mininterval=2.0, dynamic_ncols=True)
  for step in range(start + 1, config.num_train_steps + 1):
    state, step_metrics = train_step(state, next(batches))
    if t_first is None:
      jax.block_until_ready(step_metrics)
      t_first = time.perf_counter()
    window.append(step_metrics)
    if step % config.log_every_steps == 0 or step == config.num_train_steps:
      means = {k: float(np.mean([m[k] for m in jax.device_get(window)]))
               for k in window[0]}
      means["examples_per_second"] = (
          len(window) * config.batch_size / (time.perf_counter() - t_window))
      writer.write(step, "train", means)
      bar.set_postfix(loss=f"{means['loss']:.4f}",
                      ex_per_s=f"{means['examples_per_second']:.0f}")
      window, t_window = [], time.perf_counter()
    if step % config.eval_every_steps == 0 and step < config.num_train_steps:
      t_eval_start = time.perf_counter()
      val, _ = evaluator.evaluate(state, "validation")
      writer.write(step, "validation", val)
      bar.write(f"step {step}: validation {evaluator.progress_line(val)}")
      t_window = time.perf_counter()
      t_eval += t_window - t_eval_start
    if step % config.checkpoint_every_steps == 0 or step == config.num_train_steps:
      checkpoint.save(manager, state)
    bar.update(1)
  bar.close()
  jax.block_until_ready(state)
  steps_timed = config.num_train_steps - start - 1
  throughput = None
  if steps_timed > 0:
    throughput = steps_timed * config.batch_size / (
        time.perf_counter() - t_first - t_eval)
  return state, throughput


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> Dict:
  """Trains and evaluates; returns `{split: metrics}` as in results.json.

  Writes into `workdir`: config.json, checkpoints/, metrics.jsonl,
  tensorboard/, results.json and confusion_<split>.{png,json} (contrastive:
  zero_shot_confusion_<split>.{png,json} when zero-shot applies).

  Raises:
    ValueError / KeyError: for an invalid config (naming the key).
    mmjax.data.errors.DataError: for missing or malformed data.
  """
  workdir = pathlib.Path(workdir)
  t_start = time.perf_counter()
  mesh, builder, state, manager, evaluator = _setup(config, workdir, False)
  t_data = time.perf_counter() - t_start
  _save_config(config, workdir)
  restored = checkpoint.restore_latest(manager, state)
  if restored is not None:
    state = restored
  else:
    state = _initialize_encoders(config, state, mesh)
  start = int(jax.device_get(state.step))
  if writers.is_chief():
    print(f"Data ready in {t_data:.0f} s ({builder.data_dir}). "
          + (f"Resuming from the checkpoint of step {start}." if restored
             is not None else "Training from scratch."), flush=True)

  schedule = optim.learning_rate_schedule(config.optimizer, config.num_train_steps)
  train_step = steps.make_train_step_from_config(mesh, config, schedule)
  batches = parallel.prefetch_to_device(pipeline.train_batches(
      builder, "train", modalities=config.modalities, pp=config.pp_train,
      global_batch_size=config.batch_size, seed=config.seed, start_step=start),
                                         mesh)
  writer = writers.MetricWriter(workdir)
  class_names = builder.info.features["label"].names

  try:
    state, throughput = _train(config, state, batches, train_step, evaluator,
                               manager, writer, start)
  finally:
    manager.wait_until_finished()  # a pending save completes even on error
  t_train = time.perf_counter() - t_start - t_data

  results = evaluate.evaluate_and_save(evaluator, state, config.eval_splits,
                                       workdir, class_names)
  for split, split_metrics in results.items():
    writer.write(config.num_train_steps, f"final_{split}", split_metrics)
  writer.close()
  if writers.is_chief():
    writers.write_json_atomic(workdir / "run_info.json", {
        "steps": config.num_train_steps, "resumed_from_step": start,
        "data_seconds": round(t_data, 1), "train_seconds": round(t_train, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "train_examples_per_second": throughput and round(throughput, 1),
        "num_params": int(sum(np.size(x) for x in jax.tree.leaves(state.params))),
        "devices": jax.device_count(), "processes": jax.process_count(),
        "platform": jax.default_backend(), "jax": jax.__version__})
  manager.close()
  if writers.is_chief():
    for split, m in results.items():
      print(f"{split:>10}: {evaluator.result_line(m)}")
  return results


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> pathlib.Path:
  """Scores the latest checkpoint of `workdir` on every split of the dataset
  that `config.data` describes (e.g. another `manual_dir`).

  Results go to a new folder `<workdir>/evaluations/<dataset config>[-N]/`
  (results.json, confusion matrices, and source.json: the checkpoint step,
  the dataset and the evaluation pp, e.g. a `shift_soundtrack`, which the
  folder's name does not show); nothing existing is overwritten.

  Returns:
    The folder written.

  Raises:
    FileNotFoundError: when `workdir` has no checkpoint.
    ValueError: when the checkpoint does not match the config's model.
  """
  workdir = pathlib.Path(workdir)
  builder, state, manager, evaluator, step = restore_for_evaluation(
      config, workdir)
  out_dir = new_output_dir(workdir / "evaluations" / (
      builder.builder_config.name if builder.builder_config else builder.name))
  evaluate.evaluate_and_save(evaluator, state, config.eval_splits, out_dir,
                             builder.info.features["label"].names)
  if writers.is_chief():
    writers.write_json_atomic(out_dir / "source.json", {
        "checkpoint_step": step, "manual_dir": str(config.data.get("manual_dir", "")),
        "dataset": builder.info.full_name, "data_dir": str(builder.data_dir),
        "pp_eval": config.pp_eval.to_dict()})
  manager.close()
  return out_dir


def restore_for_evaluation(config: ml_collections.ConfigDict, workdir: pathlib.Path):
  """The latest checkpoint of `workdir` and what evaluating it needs.

  Returns:
    (builder, train_state, checkpoint manager (close it), SplitEvaluator,
    checkpoint step).

  Raises:
    FileNotFoundError: when `workdir` has no finished checkpoint.
    ValueError: when the checkpoint does not match the config's model.
  """
  if not (workdir / "checkpoints").is_dir():
    raise FileNotFoundError(
        f"no checkpoints in {workdir / 'checkpoints'}: train first with "
        f"--mode=train and the same --workdir")
  _, builder, state, manager, evaluator = _setup(config, workdir, True)
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no finished checkpoint in {workdir / 'checkpoints'}")
  try:
    state = checkpoint.restore_latest(manager, state)
  except (ValueError, KeyError) as e:
    raise ValueError(
        f"checkpoint {workdir / 'checkpoints' / str(step)} does not match the "
        f"model of this config (config.model / config.modalities): {e}") from e
  return builder, state, manager, evaluator, step


def new_output_dir(base: pathlib.Path) -> pathlib.Path:
  """Creates and returns `base`, or `base-1`, `base-2`, ... if it exists, so
  an earlier evaluation is never overwritten."""
  out_dir, n = base, 1
  while out_dir.exists():
    out_dir = base.with_name(f"{base.name}-{n}")
    n += 1
  out_dir.mkdir(parents=True)
  return out_dir
