"""The one train loop shared by every experiment.

`train_and_evaluate(config, workdir)` trains the model and data named by the
config, evaluates on validation during training and on every split at the
end, and resumes from the latest checkpoint in `workdir` when there is one.
What differs between objectives is the `Objective` of `config.objective`
(`mmjax.objectives`), resolved once here and passed down: its model, the
train step's loss, its evaluator and its config checks.
"""

import itertools
import json
import resource
import time
from typing import Any, Dict, NamedTuple, Optional

from etils import epath
import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from mmjax import checkpoint, objectives, parallel, paths, sharding
from mmjax.data import input_checkpoint, pipeline
from mmjax.data.builders import registry as datasets
from mmjax.evaluation import results as eval_results
from mmjax.train import config_checks, optim, steps, writers
from mmjax.train.preemption import Preempted, PreemptionGuard
from mmjax.train.state import create_train_state
from mmjax.pretrained import clip as pretrained_clip
from mmjax.pretrained import load as pretrained_load
from mmjax.workdir import assets
from mmjax.workdir import configs as workdir_configs


class TrainingDiverged(FloatingPointError):
  """A non-finite training loss or gradient norm; nothing was saved after
  the last finite step, so the latest checkpoint is the last good one."""


def _example_shapes(builder, config) -> Dict[str, jax.ShapeDtypeStruct]:
  """Global `[batch, ...]` shapes and dtypes of the model's inputs."""
  ds, _ = pipeline.eval_batches(
      builder, config.eval_splits[0], modalities=config.modalities,
      pp=config.pp_eval,
      global_batch_size=parallel.padded_batch_size(config.eval_batch_size))
  # A modality may be a dict of tensors (e.g. text: token_ids, token_mask).
  return {m: jax.tree.map(
              lambda s: jax.ShapeDtypeStruct((config.batch_size, *s.shape[1:]),
                                             s.dtype.as_numpy_dtype), spec)
          for m, spec in ds.element_spec.items() if m in config.modalities}


class Run(NamedTuple):
  """What `setup` builds for a run."""
  mesh: jax.sharding.Mesh
  builder: Any  # tfds.core.DatasetBuilder
  state: Any  # the initial train_state
  manager: Any  # orbax.checkpoint.CheckpointManager (close it)
  evaluator: Any  # the objective's evaluator
  config: ml_collections.ConfigDict  # pp specs reading the run's assets
  assets: Optional[Dict[str, Dict[str, str]]]  # W/assets/assets.json


def setup(config, workdir: epath.Path, read_only: bool,
          objective: objectives.Objective) -> Run:
  """Everything a run needs, built before anything but the run's assets
  (`mmjax.workdir.assets`, captured by a fresh training run) is written to
  `workdir`.

  Args:
    config: the experiment config.
    workdir: the run's folder.
    read_only: open the checkpoints without writing (evaluation).
    objective: `objectives.resolve(config)`.

  Returns:
    A `Run`: its `config` is `config` with the pp specs reading the run's
    own fitted preprocessing state (`W/assets`) where they name
    `{dataset_dir}` (a fresh run: the dataset's own, which it has just
    captured into `W/assets`); build every input pipeline from it.

  Raises:
    ValueError / KeyError: for an invalid config, naming the key.
    DataError: for missing data, or assets missing or changed since the run
      captured them.
  """
  config_checks.check(config)
  objective.check_config(config)
  shard_config = config.get("sharding")
  mesh = parallel.make_mesh(shard_config.fsdp if shard_config else 1)
  parallel.local_batch_size(config.batch_size)
  builder = datasets.get_builder(config.data)
  unknown = set(config.eval_splits) - set(builder.info.splits)
  if unknown:
    raise ValueError(f"config.eval_splits has {sorted(unknown)}; the dataset "
                     f"has splits {sorted(builder.info.splits)}")
  model = objective.build_model(config)
  tx = optim.make_optimizer(config.optimizer, config.num_train_steps,
                            optim.parameter_groups(config))
  # The shapes do not depend on the fitted state: the dataset's own serves.
  state = create_train_state(
      model, _example_shapes(builder, config), tx, config.seed,
      lambda abstract: sharding.state_shardings(abstract, mesh, shard_config))
  # A fresh run reads the dataset's own fitted state, which it captures
  # last (nothing is written before every check has passed); any other
  # launch reads the run's.
  fresh = not read_only and not checkpoint.has_checkpoints(
      workdir / "checkpoints")
  record = None
  if not fresh:
    config, record = assets.for_run(config, builder.data_dir, workdir)
  evaluator = objective.make_evaluator(builder, config, mesh)
  manager = checkpoint.make_manager(
      workdir / "checkpoints", keep=config.keep_checkpoints,
      read_only=read_only)
  if fresh:
    record = assets.capture(config, builder.data_dir, workdir) or None
  return Run(mesh, builder, state, manager, evaluator, config, record)


def _initialize_encoders(config, state):
  """The state with the encoders that name `init_from` loaded, and a
  contrastive model's projections and logit scale when `config.model.init_from`
  names a CLIP (a fresh run only: a resumed run restores them from its own
  checkpoint)."""
  params, batch_stats, loaded = pretrained_load.initialize_encoders(
      config, jax.device_get(state.params), jax.device_get(state.batch_stats))
  params, heads = pretrained_clip.initialize_heads(config, params)
  if not loaded and not heads:
    return state
  if writers.is_chief():
    for m, source in loaded.items():
      print(f"config.model.encoders.{m} initialised from {source}", flush=True)
    if heads:
      print(f"config.model projections and logit_scale initialised from "
            f"{heads}", flush=True)
  # Onto the state's own shardings (replicated or FSDP).
  where = lambda tree: jax.tree.map(lambda x: x.sharding, tree)
  return state.replace(
      params=jax.device_put(params, where(state.params)),
      batch_stats=jax.device_put(batch_stats, where(state.batch_stats)))


def _check_resume(config, workdir: epath.Path, allow_config_change: bool):
  """Refuses to resume with another learning-rate schedule, global batch
  size, seed, data or process count than the run's last launch.

  Raises:
    ValueError: naming the changed keys, unless `allow_config_change`.
  """
  saved = workdir_configs.saved_configs(workdir)
  changed = []
  if saved:
    changed = config_checks.changed_on_resume(
        json.loads(saved[-1].read_text()),
        json.loads(config.to_json_best_effort()))
  launches = workdir / "launches.jsonl"
  if launches.exists():
    lines = launches.read_text().splitlines()
    last = json.loads(lines[-1]) if lines else {}
    if last.get("process_count", jax.process_count()) != jax.process_count():
      changed.append(f"process count ({last['process_count']} -> "
                     f"{jax.process_count()})")
  if changed and not allow_config_change:
    raise ValueError(
        f"{workdir} holds a checkpoint of a run with another "
        f"{', '.join(changed)} (see {saved[-1].name if saved else 'launches.jsonl'}"
        f"): resuming would silently change the run. Use a new --workdir, or "
        f"pass --allow_config_change to resume anyway")


def _record_launch(workdir: epath.Path, start: int, input_resume: str) -> None:
  """Appends this launch (process and device count, step, how the input
  resumed) to launches.jsonl."""
  if writers.is_chief():
    paths.append_text(workdir / "launches.jsonl", json.dumps({
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "start_step": start,
        "input_resume": input_resume,
        "process_count": jax.process_count(),
        "device_count": jax.device_count(), "jax": jax.__version__}) + "\n")


def _check_finite(window, last_step: int) -> None:
  """Raises TrainingDiverged naming the first step of `window` (the metrics
  of steps `last_step - len(window) + 1 .. last_step`) whose loss or
  gradient norm is NaN or infinite."""
  values = jax.device_get(window)
  for i, m in enumerate(values):
    bad = {k: float(m[k]) for k in ("loss", "grad_norm")
           if k in m and not np.isfinite(m[k])}
    if bad:
      step = last_step - len(values) + 1 + i
      raise TrainingDiverged(
          f"training diverged at step {step}: {bad}. Stopped without saving; "
          f"the latest checkpoint is the last one with a finite loss")


def _train(config, state, batches, train_step, evaluator, manager, writer,
           start: int, guard: PreemptionGuard, input_position,
           metadata: Dict[str, Any]):
  """Steps `start + 1 .. num_train_steps`: logs, validates and checkpoints
  (with `input_position()`, the input's saved position, when not None, and
  `metadata` as each checkpoint's custom metadata).

  Returns the final train_state and the training throughput in examples/s,
  measured from the end of the first (compiling) step to the end, without
  the time spent in validation (None when fewer than 2 steps ran).

  Raises:
    TrainingDiverged: at a log or checkpoint step, for a non-finite loss or
      gradient norm since the last check (nothing is saved after it).
    Preempted: after saving the checkpoint of the step at which `guard`
      reached a preemption signal.
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
    preempted = guard.reached(step)
    save = (step % config.checkpoint_every_steps == 0 or preempted
            or step == config.num_train_steps)
    if save:
      _check_finite(window, step)
    if step % config.log_every_steps == 0 or step == config.num_train_steps:
      _check_finite(window, step)
      means = {k: float(np.mean([m[k] for m in jax.device_get(window)]))
               for k in window[0]}
      means["examples_per_second"] = (
          len(window) * config.batch_size / (time.perf_counter() - t_window))
      writer.write(step, "train", means)
      bar.set_postfix(loss=f"{means['loss']:.4f}",
                      ex_per_s=f"{means['examples_per_second']:.0f}")
      window, t_window = [], time.perf_counter()
    if (step % config.eval_every_steps == 0 and step < config.num_train_steps
        and not preempted):
      t_eval_start = time.perf_counter()
      val, _ = evaluator.evaluate(state, "validation")
      writer.write(step, "validation", val)
      bar.write(f"step {step}: validation {evaluator.progress_line(val)}")
      t_window = time.perf_counter()
      t_eval += t_window - t_eval_start
    if save:
      checkpoint.save(manager, state, input_position and input_position(),
                      metadata)
    bar.update(1)
    if preempted:
      bar.close()
      manager.wait_until_finished()
      raise Preempted(step, guard.signal_name)
  bar.close()
  jax.block_until_ready(state)
  steps_timed = config.num_train_steps - start - 1
  throughput = None
  if steps_timed > 0:
    throughput = steps_timed * config.batch_size / (
        time.perf_counter() - t_first - t_eval)
  return state, throughput


def _train_input(config, builder, mesh, manager, start: int):
  """The device batches of steps `start + 1 ...`; for streaming input, a
  function giving the input's position to save with a checkpoint (else
  None); and how the input resumed: "restored", "skipped" or "" (step 0).

  Streaming input restores its iterator from the checkpoint of `start` in
  constant time; without a saved position (the in-memory shuffle, or a
  checkpoint without one) the pipeline skips the examples already seen.
  """
  def build(start_step):
    return pipeline.train_batches(
        builder, "train", modalities=config.modalities, pp=config.pp_train,
        global_batch_size=config.batch_size, seed=config.seed,
        start_step=start_step,
        shuffle_buffer_size=config.input.shuffle_buffer_size,
        cycle_length=config.input.cycle_length)

  streaming = config.input.shuffle_buffer_size > 0
  pending = None
  if streaming and start and checkpoint.has_input_position(manager, start):
    host = build(0)
    pending = checkpoint.restore_input_position(manager, start, host.iterator)
  if pending is None:
    if streaming and start and writers.is_chief():
      print(f"The checkpoint of step {start} has no input position for this "
            f"process: skipping the {start * config.batch_size} examples "
            "already trained on.", flush=True)
    host, pending = build(start), []
    resume = "skipped" if start else ""
  else:
    resume = "restored"
  batches = parallel.DevicePrefetcher(itertools.chain(pending, host), mesh)
  if not host.checkpointable:  # the in-memory input: its position is the step
    return batches, None, resume
  return batches, lambda: input_checkpoint.InputSave(
      host.iterator, batches.pending()), resume


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: epath.PathLike, *,
                       allow_config_change: bool = False) -> Dict:
  """Trains and evaluates; returns `{split: metrics}` as in results.json.

  Writes into `workdir`: config.json (config.N.json for a changed config on
  resume), assets/ (the fitted preprocessing state the pp specs name under
  `{dataset_dir}`, e.g. a tokenizer: `mmjax.workdir.assets`), launches.jsonl, checkpoints/, metrics.jsonl, tensorboard/,
  results.json and confusion_<split>.{png,json} (contrastive:
  zero_shot_confusion_<split>.{png,json} when zero-shot applies). The
  workdir may be remote (`gs://...`): every file operation on it goes
  through `etils.epath` (`mmjax.paths`).

  Args:
    config: the experiment config.
    workdir: the run's folder (local or e.g. `gs://bucket/run`); resumed
      from its latest checkpoint if any.
    allow_config_change: resume even when the learning-rate schedule, global
      batch size, seed, data or process count differ from the last launch.

  Raises:
    ValueError / KeyError: for an invalid config (naming the key; an
      unknown config.objective names the known ones), or a resume that
      would change the run (naming the keys).
    mmjax.data.errors.DataError: for missing or malformed data.
    Preempted: on SIGTERM / SIGINT, after saving a checkpoint.
    TrainingDiverged: on a NaN or infinite loss (nothing saved after it).
  """
  workdir = epath.Path(workdir)
  t_start = time.perf_counter()
  objective = objectives.resolve(config)
  saved_config = config
  mesh, builder, state, manager, evaluator, config, record = setup(
      config, workdir, False, objective)
  t_data = time.perf_counter() - t_start
  if manager.latest_step() is not None:
    _check_resume(saved_config, workdir, allow_config_change)
  if writers.is_chief():
    workdir_configs.save_config(saved_config, workdir)
  restored = checkpoint.restore_latest(manager, state)
  if restored is not None:
    state = restored
  else:
    state = _initialize_encoders(config, state)
  start = int(jax.device_get(state.step))
  skipped = eval_results.skipped_examples(builder)
  if writers.is_chief() and sum(skipped.values()):
    print(f"{sum(skipped.values())} examples with a missing or unreadable "
          f"file were skipped at preparation ({skipped}); the list is in "
          f"{builder.data_dir}/dataset_info.json", flush=True)
  if writers.is_chief():
    counts = eval_results.modality_examples_line(builder)
    print(f"Data ready in {t_data:.0f} s ({builder.data_dir}). "
          + (f"{counts} " if counts else "")
          + (f"Resuming from the checkpoint of step {start}." if restored
             is not None else "Training from scratch."), flush=True)

  schedule = optim.learning_rate_schedule(config.optimizer, config.num_train_steps)
  train_step = steps.make_train_step_from_config(
      mesh, config, objective, schedule,
      state_sharding=jax.tree.map(lambda x: x.sharding, state))
  batches, input_position, input_resume = _train_input(
      config, builder, mesh, manager, start)
  _record_launch(workdir, start, input_resume)
  writer = writers.MetricWriter(workdir)
  class_names = builder.info.features["label"].names

  try:
    with PreemptionGuard() as guard:
      state, throughput = _train(
          config, state, batches, train_step, evaluator, manager, writer,
          start, guard, input_position,
          {"assets": assets.fingerprints(record)})
  except BaseException:
    writer.close()  # flushes TensorBoard events of the steps trained
    raise
  finally:
    manager.wait_until_finished()  # a pending save completes even on error
  t_train = time.perf_counter() - t_start - t_data

  results = eval_results.evaluate_and_save(
      evaluator, state, config.eval_splits, workdir, class_names)
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
        "mesh": dict(mesh.shape), "skipped_examples": skipped,
        # Peak resident memory of this process so far (Linux: KiB).
        "peak_host_memory_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "state_bytes_per_device": sharding.bytes_per_device(state),
        "platform": jax.default_backend(), "jax": jax.__version__})
  manager.close()
  if writers.is_chief():
    for split, m in results.items():
      print(f"{split:>10}: {evaluator.result_line(m)}")
  return results
