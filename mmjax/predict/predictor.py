"""`Predictor`: a trained model applied to new raw files and texts.

    predictor = mmjax.Predictor.from_workdir("runs/av_digits")
    records = predictor.predict([{"image": "7.png", "audio": "7.flac"}],
                                base_dir="/data/new")

A classifier gives per row its top-k labels with probabilities (and, with
unimodal auxiliary heads, each present modality's own); a contrastive (dual
encoder) model gives zero-shot classes from class names, embeddings
(`embed`) and retrieval figures (`retrieval`). Inputs go through the run's
own evaluation preprocessing (`mmjax.predict.decode`), batches through the
run's mesh (`mmjax.parallel`).
"""

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf

from mmjax import objectives, parallel
from mmjax.data import pipeline
from mmjax.data.builders.manifest.table import Manifest
from mmjax.data.errors import DataError
from mmjax.data.pp import builder as pp_builder
from mmjax.evaluation import contrastive as contrastive_eval
from mmjax.evaluation import restore, retrieval
from mmjax.models.registries import ENCODERS
from mmjax.predict import batches as batching
from mmjax.predict import decode, rows as rows_lib
from mmjax.train import steps
from mmjax.workdir import assets
from mmjax.workdir import configs as workdir_configs


def make_classify_step(mesh: jax.sharding.Mesh, dtype: str = "float32"):
  """`classify(state, inputs, present) -> {"fused": float32 [batch, C],
  modality: float32 [batch, C] per auxiliary head}`, the softmax
  probabilities of the classifier (`MultimodalModel`) and of its unimodal
  heads, jitted, replicated; the forward pass in `dtype` as in
  `mmjax.train.steps.make_eval_step`."""
  compute_dtype = jnp.dtype(dtype)

  def classify(state, inputs, present):
    params = steps.cast_floating(state.params, compute_dtype)
    logits, updates = state.apply_fn(
        state.variables(params), steps.cast_floating(inputs, compute_dtype),
        present, train=False, mutable=["modality_logits"])
    out = {m: jax.nn.softmax(v[0].astype(jnp.float32))
           for m, v in updates.get("modality_logits", {}).items()}
    out["fused"] = jax.nn.softmax(logits.astype(jnp.float32))
    return out

  return jax.jit(classify, out_shardings=parallel.replicated(mesh))


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


def _top(probabilities: np.ndarray, names: Sequence[str], k: int,
         similarities: Optional[np.ndarray] = None) -> List[Dict[str, Any]]:
  """The k most probable classes, most probable first (ties: lower index)."""
  order = np.argsort(-probabilities, kind="stable")[:k]
  top = [{"label": names[c], "probability": float(probabilities[c])}
         for c in order]
  if similarities is not None:
    for entry, c in zip(top, order):
      entry["similarity"] = float(similarities[c])
  return top


def _as_manifest(rows, base_dir) -> Manifest:
  return rows if isinstance(rows, Manifest) else rows_lib.from_dicts(
      rows, base_dir)


class Predictor:
  """A trained (or pretrained) model, its preprocessing and its mesh.

  Build it with `from_workdir`; a model with no workdir (e.g. a pretrained
  CLIP) can be given directly: its config (pp specs free of
  `{dataset_dir}` or resolved), a train_state, the mesh, the dataset's
  features it reads raw files into and the class names.

  Args:
    config: the run's config, pp specs bound to its assets
      (`mmjax.workdir.assets.bind`).
    state: the train_state (`apply_fn`, `params`, `batch_stats`).
    mesh: the device mesh the state lives on.
    features: `{modality: tfds feature}` of the run's dataset
      (`builder.info.features`): what raw files decode into.
    class_names: the classifier's label names (a contrastive model: the
      dataset's, the default zero-shot classes), or None.
    batch_size: examples per model call (rounded up to a multiple of the
      device count); default `config.eval_batch_size`, at most the rows
      given (rounded up likewise).
  """

  def __init__(self, config: ml_collections.ConfigDict, state: Any,
               mesh: jax.sharding.Mesh, features: decode.Features,
               class_names: Optional[Sequence[str]],
               batch_size: Optional[int] = None):
    self.config = config
    self.state = state
    self.mesh = mesh
    self.features = features
    self.class_names = None if class_names is None else list(class_names)
    self.modalities = tuple(config.modalities)
    self.contrastive = config.get("objective", "classification") == (
        "contrastive")
    self._batch_size = batch_size or config.eval_batch_size
    self._pp = dict(config.pp_eval)
    self._classify = None
    self._embed_fns = {}

  @classmethod
  def from_workdir(cls, workdir: epath.PathLike, *,
                   config: Optional[ml_collections.ConfigDict] = None,
                   batch_size: Optional[int] = None,
                   allow_config_change: bool = False) -> "Predictor":
    """The latest checkpoint of a trained run, with its config.

    Args:
      workdir: the run's folder.
      config: default the run's own (`mmjax.workdir.configs.read_config`);
        one that changes the model or its preprocessing is refused as in
        `--mode=evaluate`.
      batch_size: see the class.
      allow_config_change: accept such a config anyway.

    Raises:
      FileNotFoundError: without a config.json or a checkpoint.
      ValueError: for a config that changes the model, or a checkpoint
        that does not match it.
      DataError: when the run's assets (e.g. its tokenizer) are missing or
        changed, or its dataset cannot be read or prepared.
    """
    workdir = epath.Path(workdir)
    if config is None:
      config = workdir_configs.read_config(workdir)
    else:
      workdir_configs.check_evaluation_config(config, workdir,
                                              allow_config_change)
    builder, state, manager, evaluator, _ = restore.restore_for_evaluation(
        config, workdir, objectives.resolve(config))
    manager.close()
    bound, _ = assets.for_run(config, builder.data_dir, workdir,
                              fresh_training=False)
    bound = ml_collections.ConfigDict(bound.to_dict())
    for m, spec in bound.pp_eval.items():
      bound.pp_eval[m] = pipeline.resolve_dataset_dir(spec, builder)
    if bound.get("zero_shot") and bound.zero_shot.get("pp"):
      bound.zero_shot.pp = pipeline.resolve_dataset_dir(bound.zero_shot.pp,
                                                        builder)
    features = {m: builder.info.features[m] for m in config.modalities}
    return cls(bound, state, evaluator.mesh, features,
               contrastive_eval.label_names(builder), batch_size)

  # -- batching --------------------------------------------------------

  def _batch_size_for(self, n: int) -> int:
    return parallel.padded_batch_size(max(1, min(self._batch_size, n)))

  def _batches(self, manifest: Manifest, modalities: Sequence[str],
               skip_bad_rows: bool, errors: Dict[int, str]):
    good = batching.decoded(manifest, modalities, self.features,
                            self.config.data, skip_bad_rows, errors)
    return batching.batches(good, modalities, self.features, self._pp,
                            self._batch_size_for(len(good)))

  # -- classification --------------------------------------------------

  def predict(self, rows, *, base_dir: Optional[epath.PathLike] = None,
              top_k: int = 5, skip_bad_rows: bool = False,
              zero_shot_classes: Optional[Sequence[str]] = None
              ) -> List[Dict[str, Any]]:
    """One record per row, in order.

    Args:
      rows: dicts with `image`, `audio`, `text`, `video` (file paths, or the
        text) and optionally `label`; an empty or absent field is a missing
        modality. Or a `Manifest` (`mmjax.predict.rows.read`).
      base_dir: what relative paths of dict rows resolve against (default
        the current folder).
      top_k: labels per record.
      skip_bad_rows: record a row that cannot be read as `{"row", "input",
        "error"}` instead of raising.
      zero_shot_classes: a contrastive model's class names (each through
        `config.zero_shot.template`); default the dataset's.

    Returns:
      Classifier: `{"row": i, "input": the row, "missing": [modality],
      "top_k": [{"label", "probability"}], "modalities": {modality: top-k
      of its auxiliary head}}` (`modalities` only with auxiliary heads, for
      the present modalities). Contrastive: `{"row", "input", "top_k":
      [{"label", "probability", "similarity"}]}`, the zero-shot classes of
      the row's non-text modality (probabilities: softmax of the logit
      scale times the cosine similarities, as CLIP's).

    Raises:
      DataError: naming the line or row index, column and file of a row
        that cannot be read (unless `skip_bad_rows`).
      ValueError: for a top_k < 1.
    """
    if top_k < 1:
      raise ValueError(f"top_k must be >= 1, got {top_k}")
    manifest = _as_manifest(rows, base_dir)
    if self.contrastive:
      records = self.zero_shot(manifest, class_names=zero_shot_classes,
                               top_k=top_k, skip_bad_rows=skip_bad_rows)
    else:
      records = self._predict_classes(manifest, top_k, skip_bad_rows)
    if not isinstance(rows, Manifest):
      for record in records:
        record["input"] = dict(rows[record["row"]])
    return records

  def _predict_classes(self, manifest: Manifest, top_k: int,
                       skip_bad_rows: bool) -> List[Dict[str, Any]]:
    if self._classify is None:
      self._classify = make_classify_step(self.mesh, self.config.dtype)
    errors, records = {}, {}
    for batch in self._batches(manifest, self.modalities, skip_bad_rows,
                               errors):
      out = jax.device_get(self._classify(
          self.state, parallel.to_global(batch.inputs, self.mesh),
          parallel.to_global(batch.present, self.mesh)))
      for j, i in enumerate(batch.rows):
        missing = [m for m in self.modalities if batch.present[m][j] == 0]
        record = {"row": int(i), "input": dict(manifest.rows[i].values),
                  "missing": missing,
                  "top_k": _top(out["fused"][j], self.class_names, top_k)}
        heads = [m for m in self.modalities if m in out]
        if heads:
          record["modalities"] = {
              m: _top(out[m][j], self.class_names, top_k)
              for m in heads if m not in missing}
        records[int(i)] = record
    return self._in_order(manifest, records, errors)

  @staticmethod
  def _in_order(manifest: Manifest, records: Dict[int, Dict],
                errors: Dict[int, str]) -> List[Dict[str, Any]]:
    for i, message in errors.items():
      records[i] = {"row": i, "input": dict(manifest.rows[i].values),
                    "error": message}
    return [records[i] for i in sorted(records)]

  # -- contrastive -----------------------------------------------------

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
    manifest = _as_manifest(rows, base_dir)
    errors = {}
    good = batching.decoded(manifest, self.modalities, self.features,
                            self.config.data, skip_bad_rows, errors)
    vectors, indices = {}, {}
    for m in self.modalities:
      have = [g for g in good if g[2][m] > 0]
      chunks, kept = [], []
      for batch in batching.batches(have, self.modalities, self.features,
                                    self._pp, self._batch_size_for(len(have))):
        out = jax.device_get(self._embed_fn(m)(
            self.state, parallel.to_global(batch.inputs[m], self.mesh)))
        chunks.append(np.asarray(out)[:len(batch.rows)])
        kept.append(batch.rows)
      vectors[m] = (np.concatenate(chunks) if chunks else np.zeros(
          (0, self.config.model.embed_dim), np.float32))
      indices[m] = np.concatenate(kept) if kept else np.zeros(0, np.int64)
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
    spec = self.config.zero_shot.get("pp", "") or self._pp.get(text, "")
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
    texts = retrieval.class_texts(class_names, self.config.zero_shot.template)
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
    manifest = _as_manifest(rows, base_dir)
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
    records = {}
    similarities = retrieval.similarity(embedded.vectors[classified],
                                        class_embeddings)
    for j, i in enumerate(embedded.rows[classified]):
      logits = scale * similarities[j].astype(np.float64)
      probabilities = np.exp(logits - logits.max())
      probabilities /= probabilities.sum()
      records[int(i)] = {"row": int(i),
                         "input": dict(manifest.rows[i].values),
                         "top_k": _top(probabilities, names, top_k,
                                       similarities[j])}
    for i, row in enumerate(manifest.rows):
      if i not in records and i not in errors:
        message = (f"{manifest.where(row, classified)}: empty; zero-shot "
                   f"classification classifies the {classified}")
        if not skip_bad_rows:
          raise DataError(message)
        errors[i] = message
    return self._in_order(manifest, records, errors)

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
