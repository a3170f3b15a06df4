"""Evaluation of a classifier's train_state on whole dataset splits: loss,
accuracy, macro precision / recall / F1 and confusion matrices.

`SplitEvaluator` is also the base of the other objectives' evaluators
(`mmjax.evaluation.contrastive.ContrastiveEvaluator`); the interface the
train loop and `--mode=evaluate` use is `evaluate(state, split) -> (metrics,
extra)`, `save(...)`, `progress_line(metrics)` and `result_line(metrics)`.
An objective's evaluator is `Objective.make_evaluator` (`mmjax.objectives`).
"""

from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

from etils import epath
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from jax.sharding import Mesh

from mmjax import parallel
from mmjax.data import memory, pipeline
from mmjax.train import metrics, steps, writers


class SplitEvaluator:
  """Evaluates a classifier's state on every example of the given splits,
  exactly once.

  Each split's preprocessed batches are cached in host memory by the first
  pass when this process's share of them fits `config.eval_cache_max_bytes`
  (`mmjax.data.pipeline.eval_batches`; default
  `mmjax.data.memory.EVAL_CACHE_MAX_BYTES` for configs without the key);
  a larger split streams: every evaluation of it (every `eval_every_steps`,
  each robustness sweep point) reads and preprocesses it again. The
  metrics are the same either way.
  """

  def __init__(self, builder: tfds.core.DatasetBuilder, config: ml_collections.ConfigDict,
               mesh: Mesh, eval_step: Callable):
    self._builder = builder
    self._config = config
    self._mesh = mesh
    self._eval_step = eval_step
    self._datasets = {}

  @property
  def mesh(self) -> Mesh:
    return self._mesh

  @property
  def builder(self):
    return self._builder

  def local_batches(self, split: str):
    """This process's padded numpy batches of `split` (with `mask`)."""
    return self._dataset(split)[0].as_numpy_iterator()

  def _dataset(self, split: str):
    if split not in self._datasets:
      self._datasets[split] = pipeline.eval_batches(
          self._builder, split, modalities=self._config.modalities,
          pp=self._config.pp_eval,
          global_batch_size=parallel.padded_batch_size(
              self._config.eval_batch_size),
          cache_max_bytes=self._config.get("eval_cache_max_bytes",
                                           memory.EVAL_CACHE_MAX_BYTES))
    return self._datasets[split]

  def evaluate(self, state, split: str,
               present: Optional[Mapping[str, float]] = None,
               corrupt: Optional[Callable[[jax.Array, Dict], Dict]] = None,
               seed: int = 0) -> Tuple[Dict[str, float], np.ndarray]:
    """Metrics and confusion matrix of `state` on `split`.

    Args:
      state: the train_state.
      split: TFDS split name.
      present: optional `{modality: 0.0 or 1.0}` applied to every example
        (0.0 simulates a missing modality).
      corrupt: optional `corrupt(rng, batch) -> batch` applied to each of
        this process's batches (on its default device) before the model,
        e.g. added noise; its rng is `fold_in(key(seed), batch index)`, so
        a sweep is reproducible.
      seed: seeds `corrupt`.

    Returns:
      (`{"loss", "accuracy", "macro_precision", "macro_recall", "macro_f1",
      "num_examples"}`, float `[C, C]` confusion counts). For a dataset
      whose examples may lack a modality (a `present` feature, see
      `mmjax.data.pipeline`), each example is evaluated with the
      modalities it has (and of those, the ones `present` keeps), and the
      metrics also hold, for each subset of the modalities that some
      examples have exactly (all the dataset's modalities, also those the
      model does not use), named like "image+audio" (the config's
      modalities first, in its order; "none" for none of them),
      `num_examples_<subset>` (int) and `accuracy_<subset>` (of those
      examples).
    """
    ds, _ = self._dataset(split)
    totals = None
    for i, local in enumerate(ds.as_numpy_iterator()):
      if corrupt is not None:
        # On this process's batch on one device: no cross-device collective
        # (XLA:CPU's can stall with many devices on few cores), and mixing
        # examples (babble) stays within the process's examples.
        local = jax.device_get(corrupt(
            jax.random.fold_in(jax.random.key(seed), i), local))
      batch = parallel.to_global(local, self._mesh)
      mask = None
      if present is not None:
        n = len(local["label"])
        mask = parallel.to_global(
            {m: np.full((n,), present.get(m, 1.0), np.float32)
             for m in self._config.modalities}, self._mesh)
      sums = self._eval_step(state, batch, mask)
      totals = sums if totals is None else jax.tree.map(
          lambda a, b: a + b, totals, sums)
    totals = jax.device_get(totals)
    result = metrics.classification_metrics(totals["confusion"])
    result["loss"] = float(totals["loss_sum"] / totals["count"])
    result.update(_subset_metrics(totals, self._flagged_modalities()))
    return result, np.asarray(totals["confusion"])

  def _flagged_modalities(self) -> Tuple[str, ...]:
    """The modalities of the dataset's `present` feature (none without
    one), the config's first."""
    features = self._builder.info.features
    flagged = list(features[pipeline.PRESENT].keys()) if (
        pipeline.PRESENT in features) else []
    return tuple([m for m in self._config.modalities if m in flagged]
                 + [m for m in flagged if m not in self._config.modalities])

  def save(self, split: str, result: Dict[str, float], confusion: np.ndarray,
           out_dir: epath.Path, class_names: Sequence[str]) -> None:
    """Writes `confusion_<split>.{png,json}` (what `evaluate` returned)."""
    writers.save_confusion_matrix(
        confusion, out_dir / f"confusion_{split}", class_names,
        title=f"{split}: accuracy {result['accuracy']:.4f}")

  def progress_line(self, result: Dict[str, float]) -> str:
    """The metrics of a validation during training, for the log."""
    return f"accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}"

  def result_line(self, result: Dict[str, float]) -> str:
    """The final metrics of one split, for the log."""
    return (f"accuracy {result['accuracy']:.4f}  macro F1 "
            f"{result['macro_f1']:.4f}  ({result['num_examples']} examples)")


def _subset_metrics(totals: Mapping[str, np.ndarray],
                    modalities: Sequence[str]) -> Dict[str, float]:
  """`num_examples_<subset>` and `accuracy_<subset>` of the eval step's
  `subset_count` / `subset_correct` sums (none without them)."""
  out = {}
  for code, count in enumerate(totals.get("subset_count", ())):
    if count > 0:
      name = "+".join(steps.subset_of(code, modalities)) or "none"
      out[f"num_examples_{name}"] = int(round(float(count)))
      out[f"accuracy_{name}"] = (float(totals["subset_correct"][code])
                                 / float(count))
  return out


def make_classification_evaluator(builder: tfds.core.DatasetBuilder,
                                  config: ml_collections.ConfigDict,
                                  mesh: Mesh) -> SplitEvaluator:
  """The evaluator of config.objective "classification".

  Raises:
    ValueError: when config.model.num_classes is not the dataset's label
      count (a classifier head of another size would train without error
      and be wrong).
  """
  if "num_classes" in config.model:
    labels = builder.info.features["label"].num_classes
    if config.model.num_classes != labels:
      raise ValueError(
          f"config.model.num_classes={config.model.num_classes} but dataset "
          f"{builder.info.full_name} has {labels} classes: set "
          f"--config.model.num_classes={labels}")
  return SplitEvaluator(builder, config, mesh, steps.make_eval_step(
      mesh, config.model.num_classes, config.dtype, config.modalities))
