"""Evaluation of a contrastive (dual-encoder) train_state on whole splits:
cross-modal retrieval (recall@k, median rank, both ways) and zero-shot
classification, computed on the host by `mmjax.evaluation.retrieval`."""

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from etils import epath
import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from jax.sharding import Mesh

from mmjax import parallel
from mmjax.data import pipeline
from mmjax.data.pp import builder as preprocess
from mmjax.evaluation import retrieval
from mmjax.evaluation.classification import SplitEvaluator
from mmjax.models.registries import ENCODERS
from mmjax.train import steps, writers


class ContrastiveEvaluator(SplitEvaluator):
  """Evaluates a contrastive (dual-encoder) state on whole splits.

  Embeds every example of the split (padding rows dropped), then computes
  on the host (`mmjax.evaluation.retrieval`): the symmetric InfoNCE loss with the
  whole split as negatives, recall@1/5/10 and the median rank of both
  retrieval directions, and, when one of the two modalities has a text
  encoder and the dataset's `label` feature names at least 2 classes,
  zero-shot classification of the other modality: each class name goes
  through `config.zero_shot.template` and the text modality's
  `config.pp_eval` spec (the ops the pipeline applies to each example; or
  `config.zero_shot.pp` when set), is embedded by the text encoder, and
  each example takes the class whose text is the most similar.
  """

  def __init__(self, builder: tfds.core.DatasetBuilder,
               config: ml_collections.ConfigDict, mesh: Mesh):
    super().__init__(builder, config, mesh,
                     steps.make_embed_step(mesh, config.dtype))
    self._modalities = tuple(config.modalities)
    self._zero_shot = zero_shot_modalities(config, builder)
    self._class_inputs = None
    self._embed_classes = None
    if self._zero_shot is not None:
      self._embed_classes = steps.make_modality_embed_fn(
          mesh, self._zero_shot[1], config.dtype)

  @property
  def zero_shot(self) -> Optional[Tuple[str, str]]:
    """(classified modality, text modality), or None without zero-shot."""
    return self._zero_shot

  def embed_split(self, state, split: str
                  ) -> Tuple[Dict[str, np.ndarray], np.ndarray, float]:
    """(`{modality: float32 [n, embed_dim]}`, int32 labels `[n]`, the logit
    scale) of the n examples of `split`, padding dropped."""
    ds, _ = self._dataset(split)
    chunks = {m: [] for m in self._modalities}
    labels, logit_scale = [], None
    for local in ds.as_numpy_iterator():
      out = jax.device_get(self._eval_step(
          state, parallel.to_global(local, self._mesh)))
      keep = np.asarray(out["mask"]) > 0
      for m in self._modalities:
        chunks[m].append(np.asarray(out["embeddings"][m])[keep])
      labels.append(np.asarray(out["label"])[keep])
      logit_scale = float(out["logit_scale"])
    return ({m: np.concatenate(v) for m, v in chunks.items()},
            np.concatenate(labels), logit_scale)

  def class_inputs(self) -> Any:
    """The zero-shot class texts, preprocessed: the text modality's input
    for a batch of C classes (e.g. `{"token_ids", "token_mask"}` `[C, L]`).

    The spec is `config.zero_shot.pp`, or when empty the text modality's
    `config.pp_eval` spec, with `{dataset_dir}` resolved as the pipeline
    does; each text goes through it as one example's scalar tf.string.

    Raises:
      ValueError: naming config.zero_shot.pp or config.pp_eval.<text
        modality> when its ops cannot preprocess a text, or
        config.zero_shot.template when it is invalid.
    """
    if self._class_inputs is None:
      text = self._zero_shot[1]
      texts = retrieval.class_texts(label_names(self._builder),
                                    self._config.zero_shot.template)
      key = "zero_shot.pp"
      spec = self._config.zero_shot.get("pp", "")
      if not spec:
        key, spec = f"pp_eval.{text}", self._config.pp_eval.get(text, "")
      try:
        op = preprocess.parse(pipeline.resolve_dataset_dir(spec, self._builder))
      except ValueError as e:
        raise ValueError(f"zero-shot classification: config.{key}: {e}") from e

      def fn(position, x):
        return op(x, tf.random.experimental.stateless_fold_in(
            tf.constant([0, 0], tf.int64), position))
      try:
        ds = tf.data.Dataset.from_tensor_slices(texts).enumerate().map(fn)
        self._class_inputs = next(ds.batch(len(texts)).as_numpy_iterator())
      except (TypeError, ValueError, tf.errors.OpError) as e:
        raise ValueError(
            f"zero-shot classification: config.{key}={spec!r} cannot "
            f"preprocess the class texts, strings such as {texts[0]!r}: {e}. "
            f"Set config.zero_shot.pp to a spec that takes one string (e.g. "
            f"the tokenize op alone)") from e
    return self._class_inputs

  def evaluate(self, state, split: str,
               present: Optional[Mapping[str, float]] = None,
               corrupt: Optional[Callable[[jax.Array, Dict], Dict]] = None,
               seed: int = 0) -> Tuple[Dict[str, float], Optional[np.ndarray]]:
    """Retrieval (and zero-shot) metrics of `state` on `split`.

    Returns:
      (`{"loss", "num_examples", "logit_scale", "<a>_to_<b>_recall_at_<k>",
      "<a>_to_<b>_median_rank", the same "<b>_to_<a>", and with zero-shot
      "zero_shot_accuracy", "zero_shot_macro_precision",
      "zero_shot_macro_recall", "zero_shot_macro_f1"}`, the zero-shot float
      `[C, C]` confusion counts or None).

    Raises:
      ValueError: when `present` or `corrupt` is given (classification
        only).
    """
    del seed
    if present is not None or corrupt is not None:
      raise ValueError("missing-modality and corruption evaluation are for "
                       "config.objective='classification'")
    embeddings, labels, logit_scale = self.embed_split(state, split)
    a, b = self._modalities
    result = {"loss": retrieval.infonce_loss(embeddings[a], embeddings[b],
                                             logit_scale),
              "num_examples": int(len(labels)), "logit_scale": logit_scale}
    result.update(retrieval.retrieval_metrics(embeddings, self._modalities))
    confusion = None
    if self._zero_shot is not None:
      classified, _ = self._zero_shot
      class_embeddings = np.asarray(jax.device_get(self._embed_classes(
          state, self.class_inputs())))
      scores, confusion = retrieval.zero_shot_metrics(
          embeddings[classified], class_embeddings, labels)
      result.update(scores)
    return result, confusion

  def save(self, split: str, result: Dict[str, float],
           confusion: Optional[np.ndarray], out_dir: epath.Path,
           class_names: Sequence[str]) -> None:
    """Writes `zero_shot_confusion_<split>.{png,json}` (with zero-shot)."""
    if confusion is not None:
      writers.save_confusion_matrix(
          confusion, out_dir / f"zero_shot_confusion_{split}", class_names,
          title=f"{split}: zero-shot accuracy "
                f"{result['zero_shot_accuracy']:.4f}")

  def _recall_line(self, result: Dict[str, float]) -> str:
    a, b = self._modalities
    line = (f"R@1 {a}->{b} {result[f'{a}_to_{b}_recall_at_1']:.4f}, "
            f"{b}->{a} {result[f'{b}_to_{a}_recall_at_1']:.4f}")
    if "zero_shot_accuracy" in result:
      line += f", zero-shot accuracy {result['zero_shot_accuracy']:.4f}"
    return line

  def progress_line(self, result: Dict[str, float]) -> str:
    return f"{self._recall_line(result)}, loss {result['loss']:.4f}"

  def result_line(self, result: Dict[str, float]) -> str:
    return (f"{self._recall_line(result)}  ({result['num_examples']} "
            f"examples)")


def label_names(builder: tfds.core.DatasetBuilder) -> Optional[Sequence[str]]:
  """The names of the dataset's `label` classes, or None when `label` is
  not a `ClassLabel`."""
  label = builder.info.features["label"]
  return list(label.names) if isinstance(
      label, tfds.features.ClassLabel) else None


def zero_shot_modalities(config: ml_collections.ConfigDict,
                         builder: tfds.core.DatasetBuilder
                         ) -> Optional[Tuple[str, str]]:
  """(classified modality, text modality) when zero-shot classification
  applies: exactly one of the two modalities has a text encoder (whose
  registered class says `modality = "text"`) and the dataset's `label`
  names at least 2 classes; else None."""
  text = [m for m in config.modalities if getattr(
      ENCODERS.get(config.model.encoders[m].name), "modality", None) == "text"]
  names = label_names(builder)
  if len(text) != 1 or not names or len(names) < 2:
    return None
  other = next(m for m in config.modalities if m != text[0])
  return other, text[0]
