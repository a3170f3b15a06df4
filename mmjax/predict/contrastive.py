"""The contrastive (dual-encoder) side of `Predictor`: embeddings of new
rows, zero-shot classification from class names and retrieval figures over
the rows, through `ContrastiveModel.embed` and `logit_scale` only (so a
pretrained CLIP built as a `ContrastiveModel` serves alike)."""

from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from etils import epath
import jax
import numpy as np
import tensorflow as tf

from mmjax import parallel
from mmjax.data.errors import DataError
from mmjax.data.pp import builder as pp_builder
from mmjax.evaluation import retrieval
from mmjax.models.registries import ENCODERS
from mmjax.predict import batches as batching
from mmjax.predict import records as records_lib
from mmjax.train import steps


class Embeddings(NamedTuple):
  """What `Predictor.embed` returns.

  Attributes:
    vectors: `{modality: float32 [n_m, embed_dim]}`, L2-normalised rows, of
      the rows that give that modality.
    rows: `{modality: int64 [n_m]}`, the 0-based row of each vector.
    errors: `{row: message}` of the rows skipped (`skip_bad_rows`).
  """
  vectors: Dict[str, np.ndarray]
  rows: Dict[str, np.ndarray]
  errors: Dict[int, str]


class ContrastiveMethods:
  """`Predictor`'s methods for a contrastive run (`config.objective =
  "contrastive"`); each raises ValueError for a classifier."""

  def _require_contrastive(self, what: str) -> None:
    if not self.contrastive:
      raise ValueError(f"{what} needs a contrastive model (config.objective="
                       f"'contrastive'); this run's objective is "
                       f"{self.config.get('objective', 'classification')!r}")

  def _embed_fn(self, modality: str):
    if modality not in self._embed_fns:
      self._embed_fns[modality] = steps.make_modality_embed_fn(
          self.mesh, modality, self.config.dtype)
    return self._embed_fns[modality]

  def embed(self, rows, *, base_dir: Optional[epath.PathLike] = None,
            skip_bad_rows: bool = False) -> Embeddings:
    """L2-normalised embeddings of each row's modalities (contrastive).

    Each modality a row gives is embedded by its own encoder and projection
    (`ContrastiveModel.embed`); rows without it have no vector of it.

    Raises:
      ValueError: for a classifier.
      DataError: as `predict`.
    """
    self._require_contrastive("embed")
    manifest = records_lib.as_manifest(rows, base_dir)
    errors = {}
    good = batching.decoded(manifest, self.modalities, self.features,
                            self.config.data, skip_bad_rows, errors)
    chunks = {m: [] for m in self.modalities}
    kept = {m: [] for m in self.modalities}
    for batch in batching.batches(good, self.modalities, self.features,
                                  self._pp, self._batch_size_for(len(good))):
      n = len(batch.rows)
      for m in self.modalities:
        given = batch.present[m][:n] > 0
        if given.any():
          out = jax.device_get(self._embed_fn(m)(
              self.state, parallel.to_global(batch.inputs[m], self.mesh)))
          chunks[m].append(np.asarray(out)[:n][given])
          kept[m].append(batch.rows[given])
    vectors = {m: np.concatenate(c) if c else np.zeros(
        (0, self.config.model.embed_dim), np.float32)
               for m, c in chunks.items()}
    indices = {m: np.concatenate(k) if k else np.zeros(0, np.int64)
               for m, k in kept.items()}
    return Embeddings(vectors, indices, errors)

  def class_inputs(self, texts: Sequence[str]) -> Any:
    """Texts (e.g. zero-shot class prompts) as the text encoder's batch,
    through `config.zero_shot.pp` or else the text modality's
    `config.pp_eval` spec, one scalar tf.string each, as
    `ContrastiveEvaluator.class_inputs` preprocesses the class texts.

    Raises:
      ValueError: for a model without a text modality, or a spec that
        cannot take one string.
    """
    text = self.zero_shot_modalities()[1]
    spec = self._zero_shot_config.get("pp", "") or self._pp.get(text, "")
    op = pp_builder.parse(spec)

    def fn(position, x):
      return op(x, tf.random.experimental.stateless_fold_in(
          tf.constant([0, 0], tf.int64), position))
    ds = tf.data.Dataset.from_tensor_slices(list(texts)).enumerate().map(fn)
    return next(ds.batch(len(texts)).as_numpy_iterator())

  def class_embeddings(self, class_names: Sequence[str]) -> np.ndarray:
    """float32 `[C, embed_dim]`: each class name through
    `config.zero_shot.template`, preprocessed (`class_inputs`) and embedded
    by the text encoder.

    Raises:
      ValueError: as `class_inputs`, or for a template without '{}'.
    """
    texts = retrieval.class_texts(
        class_names, self._zero_shot_config.get("template", "{}"))
    text = self.zero_shot_modalities()[1]
    return np.asarray(jax.device_get(self._embed_fn(text)(
        self.state, self.class_inputs(texts))))

  def zero_shot_modalities(self):
    """(classified modality, text modality) of zero-shot classification,
    as `mmjax.evaluation.contrastive.zero_shot_modalities` finds them.

    Raises:
      ValueError: for a classifier, or without exactly one text modality.
    """
    self._require_contrastive("zero-shot classification")
    text = [m for m in self.modalities if getattr(ENCODERS.get(
        self.config.model.encoders[m].name), "modality", None) == "text"]
    if len(text) != 1:
      raise ValueError(f"zero-shot classification needs exactly one text "
                       f"modality (an encoder whose modality is 'text') "
                       f"among {self.modalities}")
    return next(m for m in self.modalities if m != text[0]), text[0]

  def zero_shot(self, rows, *, class_names: Optional[Sequence[str]] = None,
                top_k: int = 5, base_dir: Optional[epath.PathLike] = None,
                skip_bad_rows: bool = False,
                embedded: Optional[Embeddings] = None) -> List[Dict]:
    """Zero-shot classes of each row's non-text modality (contrastive):
    the records `predict` returns for a contrastive model.

    Args:
      rows: as `predict`.
      class_names: each through `config.zero_shot.template`; default the
        dataset's classes.
      top_k: classes per record.
      base_dir: as `predict`.
      skip_bad_rows: as `predict`; a row without the classified modality
        is then an error record too.
      embedded: `embed(rows)` when already computed.

    Raises:
      ValueError: for a classifier, fewer than 2 class names, or a model
        without one text modality.
      DataError: as `predict`, and for a row without the classified
        modality (unless skip_bad_rows).
    """
    manifest = records_lib.as_manifest(rows, base_dir)
    names = list(class_names or self.class_names or [])
    if len(names) < 2:
      raise ValueError("zero-shot classification needs at least 2 class "
                       "names (--zero_shot_classes: one per line)")
    classified, _ = self.zero_shot_modalities()
    class_embeddings = self.class_embeddings(names)
    embedded = embedded or self.embed(manifest, skip_bad_rows=skip_bad_rows)
    scale = float(jax.device_get(self.state.apply_fn(
        self.state.variables(), method="logit_scale")))
    errors = dict(embedded.errors)
    found = {}
    similarities = retrieval.similarity(embedded.vectors[classified],
                                        class_embeddings)
    for j, i in enumerate(embedded.rows[classified]):
      logits = scale * similarities[j].astype(np.float64)
      probabilities = np.exp(logits - logits.max())
      probabilities /= probabilities.sum()
      found[int(i)] = {"row": int(i),
                         "input": dict(manifest.rows[i].values),
                         "top_k": records_lib.top(probabilities, names, top_k,
                                       similarities[j])}
    for i, row in enumerate(manifest.rows):
      if i not in found and i not in errors:
        message = (f"{manifest.where(row, classified)}: empty; zero-shot "
                   f"classification classifies the {classified}")
        if not skip_bad_rows:
          raise DataError(message)
        errors[i] = message
    return records_lib.in_order(manifest, found, errors)

  def retrieval(self, rows, *, base_dir: Optional[epath.PathLike] = None,
                skip_bad_rows: bool = False,
                embedded: Optional[Embeddings] = None) -> Dict[str, float]:
    """Retrieval figures over the rows that give both modalities (row i's
    two halves are a pair): recall@1/5/10 and median rank in both
    directions (`mmjax.evaluation.retrieval.retrieval_metrics`), with
    `num_pairs`.

    Raises:
      ValueError: for a classifier, or fewer than 2 pairs.
    """
    self._require_contrastive("retrieval")
    embedded = embedded or self.embed(rows, base_dir=base_dir,
                                      skip_bad_rows=skip_bad_rows)
    a, b = self.modalities
    both = np.intersect1d(embedded.rows[a], embedded.rows[b])
    if len(both) < 2:
      raise ValueError(f"retrieval needs at least 2 rows with both {a} and "
                       f"{b}, got {len(both)}")
    pick = {m: embedded.vectors[m][np.searchsorted(embedded.rows[m], both)]
            for m in (a, b)}
    result = retrieval.retrieval_metrics(pick, (a, b))
    result["num_pairs"] = int(len(both))
    return result
