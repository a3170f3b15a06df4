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

from typing import Any, Dict, List, Optional, Sequence

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import optax
import tensorflow_datasets as tfds

from mmjax import objectives, parallel
from mmjax.data import pipeline
from mmjax.data.builders.manifest.table import Manifest
from mmjax.evaluation import contrastive as contrastive_eval
from mmjax.evaluation import restore
from mmjax.predict import batches as batching
from mmjax.predict import decode
from mmjax.predict import records as records_lib
from mmjax.predict.contrastive import ContrastiveMethods
from mmjax.pretrained import clip
from mmjax.train import steps
from mmjax.train.state import TrainState
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


class Predictor(ContrastiveMethods):
  """A trained (or pretrained) model, its preprocessing and its mesh.

  Build it with `from_workdir`; a model with no workdir (e.g. a pretrained
  CLIP, a `ContrastiveModel` whose encoders and projections were loaded
  from a checkpoint) can be given directly: its config (pp specs free of
  `{dataset_dir}`, `zero_shot.template`), a train_state, the mesh, the
  features raw files decode into (e.g. `{"image":
  tfds.features.Image(shape=(224, 224, 3)), "text": tfds.features.Text()}`)
  and the class names. A contrastive model is used through
  `ContrastiveModel.embed` and `logit_scale` only.

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

  Raises:
    ValueError: in a job of several processes (prediction reads every row
      in one process; its batches are split over that process's devices).
  """

  def __init__(self, config: ml_collections.ConfigDict, state: Any,
               mesh: jax.sharding.Mesh, features: decode.Features,
               class_names: Optional[Sequence[str]],
               batch_size: Optional[int] = None):
    if jax.process_count() > 1:
      raise ValueError(f"prediction runs in one process (this job has "
                       f"{jax.process_count()}): every process would read "
                       f"all the rows")
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
    self._zero_shot_config = config.get("zero_shot") or {}
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
    bound, _ = assets.for_run(config, builder.data_dir, workdir)
    bound = ml_collections.ConfigDict(bound.to_dict())
    for m, spec in bound.pp_eval.items():
      bound.pp_eval[m] = pipeline.resolve_dataset_dir(spec, builder)
    if bound.get("zero_shot") and bound.zero_shot.get("pp"):
      bound.zero_shot.pp = pipeline.resolve_dataset_dir(bound.zero_shot.pp,
                                                        builder)
    features = {m: builder.info.features[m] for m in config.modalities}
    return cls(bound, state, evaluator.mesh, features,
               contrastive_eval.label_names(builder), batch_size)

  @classmethod
  def from_pretrained_clip(cls, config: ml_collections.ConfigDict, *,
                           batch_size: Optional[int] = None) -> "Predictor":
    """A pretrained CLIP with no training: `config.model.init_from` names
    the local Hugging Face CLIP directory (a config from
    `mmjax.pretrained.clip.clip_config`, e.g. `configs/clip_emoji.py`),
    whose towers, projections and `logit_scale` are loaded
    (`clip.load_clip`). Images of any size and plain texts are read from
    the rows; `config.pp_eval` preprocesses them (the checkpoint's image
    processor and tokenizer).

    Raises:
      ValueError: when `config.model.init_from` is unset or `config` is not
        the CLIP's contrastive config (objective, `embed_dim`).
      FileNotFoundError / WeightError: see `clip.load_clip`.
    """
    checkpoint = config.model.get("init_from", "")
    if not checkpoint or config.get("objective") != "contrastive":
      raise ValueError(
          "a pretrained CLIP needs config.objective='contrastive' and "
          "config.model.init_from=<its directory> (build the config with "
          "mmjax.pretrained.clip.clip_config, e.g. configs/clip_emoji.py)")
    loaded = clip.load_clip(checkpoint)
    if int(loaded.config.model.embed_dim) != int(config.model.embed_dim):
      raise ValueError(
          f"config.model.embed_dim={config.model.embed_dim}, but the CLIP in "
          f"{checkpoint} projects to {loaded.config.model.embed_dim}")
    mesh = parallel.make_mesh(1)
    state = TrainState.create(
        apply_fn=loaded.model.apply, tx=optax.identity(), batch_stats={},
        params=jax.device_put(loaded.params, parallel.replicated(mesh)))
    features = {"image": tfds.features.Image(shape=(None, None, 3)),
                "text": tfds.features.Text()}
    return cls(config, state, mesh, features, None, batch_size)

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
    manifest = records_lib.as_manifest(rows, base_dir)
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
                  "top_k": records_lib.top(out["fused"][j], self.class_names, top_k)}
        heads = [m for m in self.modalities if m in out]
        if heads:
          record["modalities"] = {
              m: records_lib.top(out[m][j], self.class_names, top_k)
              for m in heads if m not in missing}
        records[int(i)] = record
    return records_lib.in_order(manifest, records, errors)
