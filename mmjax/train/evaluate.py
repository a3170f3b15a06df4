"""Evaluation of a train_state on whole dataset splits."""

import pathlib
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from jax.sharding import Mesh

from mmjax import parallel
from mmjax.data import pipeline
from mmjax.train import metrics, writers


class SplitEvaluator:
  """Evaluates a state on every example of the given splits, exactly once.

  Each split's preprocessed batches are cached after the first pass.
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

  def local_batches(self, split: str):
    """This process's padded numpy batches of `split` (with `mask`)."""
    return self._dataset(split)[0].as_numpy_iterator()

  def _dataset(self, split: str):
    if split not in self._datasets:
      self._datasets[split] = pipeline.eval_batches(
          self._builder, split, modalities=self._config.modalities,
          pp=self._config.pp_eval, global_batch_size=self._config.eval_batch_size)
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
      "num_examples"}`, float `[C, C]` confusion counts).
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
    return result, np.asarray(totals["confusion"])


def evaluate_and_save(evaluator: SplitEvaluator, state, splits: Sequence[str],
                      out_dir: pathlib.Path, class_names: Sequence[str],
                      results_name: str = "results.json") -> Dict[str, Dict[str, float]]:
  """Evaluates `splits`, writes `<out_dir>/<results_name>` and per split
  `confusion_<split>.{png,json}`; returns `{split: metrics}`."""
  results = {}
  for split in splits:
    results[split], confusion = evaluator.evaluate(state, split)
    writers.save_confusion_matrix(
        confusion, out_dir / f"confusion_{split}", class_names,
        title=f"{split}: accuracy {results[split]['accuracy']:.4f}")
  if writers.is_chief():
    writers.write_json_atomic(out_dir / results_name, results)
  return results
