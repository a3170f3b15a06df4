"""A complete pretrained CLIP (Radford et al. 2021) as mmjax's contrastive
model: both towers, both projections and the logit scale of a Hugging Face
`CLIPModel` checkpoint (`model_type` "clip", e.g. openai/clip-vit-base-patch32
written by `save_pretrained`).

The towers load into the encoders by their own `init_from`
(`mmjax.pretrained.clip_vision`, `clip_text`); this module loads the rest
into `mmjax.models.contrastive.ContrastiveModel` when `config.model.init_from`
names the checkpoint:

  - `visual_projection.weight` `[projection_dim, vision hidden]` -> the
    image modality's `<m>_projection/kernel` `[hidden, projection_dim]`,
    `text_projection.weight` likewise for the text modality (which Linear a
    modality takes is its encoder's family's `projection`);
  - `logit_scale` (a scalar, the log of the inverse temperature) ->
    `logit_scale`, the same parametrisation: the model multiplies cosine
    similarities by `exp(min(logit_scale, log 100))`. `transformers` applies
    no cap at inference, so a checkpoint above log 100 is refused (OpenAI's
    is log 100 itself, clamped there in training).

The contrastive model pools each encoder's tokens by their mean; with the
encoders CLIP's pooled outputs (pool "cls" + pooler "layer_norm" for the
image, pool "eos" for the text: one token each) that mean is the pooled
output itself, so embeddings and logits are `transformers.CLIPModel`'s
`image_embeds`, `text_embeds` and `logits_per_image`.

Use: `clip_config(checkpoint[, base])` is an experiment config (of an
image-text dataset config `base`, for fine-tuning), `clip_model_config`
its `config.model` (encoders, `embed_dim`, `init_from`) and `clip_pp` its
pp specs; for Python inference without training, `load_clip`,
`preprocess_images`, `tokenize_texts`, `embed`, `zero_shot_logits`.
"""

import dataclasses
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mmjax.models.contrastive import (MAX_LOGIT_SCALE, ContrastiveModel,
                                      build_contrastive_model)
from mmjax.models.registries import split_options
from mmjax.pretrained import checkpoint_files
from mmjax.pretrained import load as pretrained_load
from mmjax.pretrained.families import find_family
from mmjax.pretrained.weight_map import WeightSource, assemble, linear

# `transformers.CLIPConfig` default.
DEFAULT_PROJECTION_DIM = 512
# The encoder attributes that give CLIP's pooled outputs.
IMAGE_ENCODER = ("vit", {"pool": "cls", "pooler": "layer_norm"})
TEXT_ENCODER = ("text_transformer", {"pool": "eos"})


def _clip_config(checkpoint: str, where: str) -> Dict[str, Any]:
  """config.json of a full CLIP checkpoint.

  Raises:
    FileNotFoundError: see `checkpoint_files.resolve`, `load_config`.
    ValueError: naming `where` when the model type is not "clip".
  """
  hf_config = checkpoint_files.load_config(checkpoint_files.resolve(checkpoint))
  model_type = hf_config.get("model_type")
  if model_type != "clip":
    raise ValueError(f"{where}={checkpoint!r} has model_type {model_type!r}; "
                     f"projections and logit_scale come from a full CLIPModel "
                     f"checkpoint (model_type 'clip')")
  return hf_config


def clip_model_config(checkpoint: str, **encoder_overrides: Mapping[str, Any]
                      ) -> ml_collections.ConfigDict:
  """`config.model` of the contrastive objective that is the CLIP in
  `checkpoint`: `encoders.image` (`vit`, pool "cls", pooler "layer_norm"),
  `encoders.text` (`text_transformer`, pool "eos"), both with `init_from`,
  `embed_dim` = the checkpoint's `projection_dim`, and `init_from` (the
  projections and logit scale).

  Args:
    checkpoint: a `save_pretrained` directory of a `CLIPModel` (or a hub id
      when the network allows).
    **encoder_overrides: `image=` / `text=` dicts of encoder options, e.g.
      `image={"freeze": True}` (attributes the checkpoint fixes cannot be
      overridden).

  Raises:
    FileNotFoundError, ValueError: for a missing checkpoint, one that is not
      a full CLIP, or an override of an attribute the checkpoint fixes.
  """
  hf_config = _clip_config(checkpoint, "clip_model_config")
  unknown = sorted(set(encoder_overrides) - {"image", "text"})
  if unknown:
    raise ValueError(f"clip_model_config: encoder overrides are keyed "
                     f"'image' and 'text', got {unknown}")
  encoders = {}
  for modality, (name, pooling) in (("image", IMAGE_ENCODER),
                                    ("text", TEXT_ENCODER)):
    encoders[modality] = pretrained_load.pretrained_encoder_config(
        checkpoint, name, **{**pooling,
                             **dict(encoder_overrides.get(modality) or {})})
  return ml_collections.ConfigDict({
      "encoders": encoders,
      "embed_dim": int(hf_config.get("projection_dim", DEFAULT_PROJECTION_DIM)),
      "init_from": str(checkpoint)})


def clip_pp(checkpoint: str,
            max_length: Optional[int] = None) -> Dict[str, str]:
  """`{"image": ..., "text": ...}`: the pp specs of the checkpoint's own image
  processor (`hf_image_preprocess`, uint8 `[h, w, c]` -> float32) and
  tokenizer (`tokenize`, one string -> `token_ids`, `token_mask`), which the
  directory must hold (`CLIPProcessor.save_pretrained`).

  Args:
    checkpoint: a local CLIP directory.
    max_length: tokens per text; default the checkpoint's
      `max_position_embeddings` (77 for OpenAI's).
  """
  if max_length is None:
    text = find_family("clip", "text_transformer").sub_config(
        _clip_config(checkpoint, "clip_pp"))
    max_length = int(text["max_position_embeddings"])
  return {"image": f"hf_image_preprocess(checkpoint={str(checkpoint)!r})",
          "text": f"tokenize(tokenizer={str(checkpoint)!r}, "
                  f"max_length={max_length})"}


def clip_config(checkpoint: str,
                base: Optional[ml_collections.ConfigDict] = None, *,
                max_length: Optional[int] = None) -> ml_collections.ConfigDict:
  """The experiment config of the CLIP in `checkpoint`, in one call.

  Without `base`, what inference reads (`load_clip`): `{"modalities":
  ("image", "text"), "objective": "contrastive", "model":
  clip_model_config(checkpoint), "pp_eval": clip_pp(checkpoint),
  "zero_shot": {"template": "a photo of a {}.", "pp": ""}}`.

  With `base`, an image-text experiment config (e.g.
  `configs/emoji_image_text.py`'s): a copy (locked as `base` was) with
  `objective` "contrastive", `model.encoders`, `model.embed_dim` and
  `model.init_from` the CLIP's, and in `pp_train` and `pp_eval` the image
  spec replaced by the checkpoint's image processor and, in the text spec,
  the `tokenize` op by one with the checkpoint's tokenizer (the ops before
  it, e.g. `select_text`, kept), as in `zero_shot.pp` if set. Ready to
  fine-tune with `mmjax.train.loop.train_and_evaluate`.

  Args:
    checkpoint: a CLIP directory with its tokenizer and image processor.
    base: an experiment config over the modalities "image" and "text".
    max_length: tokens per text; default the checkpoint's positions.

  Raises:
    ValueError: see `clip_model_config`; for a `base` whose modalities are
      not "image" and "text", or a text spec without a `tokenize` op.
  """
  model, pp = clip_model_config(checkpoint), clip_pp(checkpoint, max_length)
  if base is None:
    return ml_collections.ConfigDict({
        "modalities": ("image", "text"), "objective": "contrastive",
        "model": model, "pp_eval": pp,
        "zero_shot": {"template": "a photo of a {}.", "pp": ""}})
  if sorted(base.modalities) != ["image", "text"]:
    raise ValueError(f"clip_config: base.modalities must be 'image' and "
                     f"'text', got {tuple(base.modalities)}")
  c = base.copy_and_resolve_references()
  with c.unlocked():
    c.objective = "contrastive"
    c.model.encoders = model.encoders
    c.model.embed_dim = model.embed_dim
    c.model.init_from = model.init_from
    for key in ("pp_train", "pp_eval"):
      c[key].image = pp["image"]
      c[key].text = _with_tokenizer(c[key].text, pp["text"], f"{key}.text")
    if c.get("zero_shot") and c.zero_shot.get("pp"):
      c.zero_shot.pp = _with_tokenizer(c.zero_shot.pp, pp["text"],
                                       "zero_shot.pp")
  return c


def _with_tokenizer(spec: str, tokenize: str, where: str) -> str:
  """`spec` with its `tokenize(...)` ops replaced by `tokenize`.

  Raises:
    ValueError: naming `where` when `spec` has no `tokenize` op.
  """
  ops = [op.strip() for op in spec.split("|") if op.strip()]
  found = [i for i, op in enumerate(ops) if re.match(r"tokenize\b", op)]
  if not found:
    raise ValueError(f"clip_config: config.{where}={spec!r} has no tokenize "
                     f"op to replace with the CLIP's ({tokenize})")
  return "|".join(tokenize if i in found else op for i, op in enumerate(ops))


def load_heads(config: ml_collections.ConfigDict,
               expected: Mapping[str, Any]) -> Dict[str, Any]:
  """The `<modality>_projection` and `logit_scale` params of the CLIP
  checkpoint `config.model.init_from`.

  Args:
    config: an experiment config of the contrastive objective.
    expected: the contrastive model's params as initialised (arrays or
      ShapeDtypeStructs).

  Returns:
    `{"<a>_projection": {"kernel": float32 [dim_a, embed_dim]},
    "<b>_projection": ..., "logit_scale": float32 []}`.

  Raises:
    ValueError: naming the config key: not the contrastive objective, not
      a full CLIP checkpoint, an encoder that is not one of its towers or
      that does not `init_from` the same checkpoint, an `embed_dim` other
      than its `projection_dim`, or a `logit_scale` above log 100.
    WeightError: naming a missing or mis-shaped weight.
  """
  init_from = config.model.init_from
  if config.get("objective", "classification") != "contrastive":
    raise ValueError(f"config.model.init_from={init_from!r} loads a CLIP's "
                     f"projections and logit scale into the model of "
                     f"config.objective='contrastive', not "
                     f"{config.get('objective', 'classification')!r}; "
                     f"classifier encoders load with "
                     f"config.model.encoders.<m>.init_from")
  hf_config = _clip_config(init_from, "config.model.init_from")
  projection_dim = int(hf_config.get("projection_dim", DEFAULT_PROJECTION_DIM))
  if config.model.embed_dim != projection_dim:
    raise ValueError(f"config.model.embed_dim={config.model.embed_dim}, the "
                     f"checkpoint config.model.init_from={init_from!r} has "
                     f"projection_dim={projection_dim}")
  directory = checkpoint_files.resolve(init_from)
  weights = checkpoint_files.load_weights(directory)
  source = WeightSource(weights, str(directory))
  mapped, used = {}, {}
  for m in config.modalities:
    encoder = config.model.encoders[m]
    where = f"config.model.encoders.{m}"
    if encoder.get("init_from", "") != init_from:
      raise ValueError(
          f"{where}.init_from={encoder.get('init_from', '')!r}, but "
          f"config.model.init_from={init_from!r}: a CLIP's projections fit "
          f"only its own towers; build the model config with "
          f"mmjax.pretrained.clip.clip_model_config")
    try:
      family = find_family("clip", encoder["name"])
    except ValueError:
      raise ValueError(f"{where}.name={encoder['name']!r} is not a tower of "
                       f"the CLIP config.model.init_from={init_from!r} (its "
                       f"image tower is 'vit', its text tower "
                       f"'text_transformer')") from None
    if family.projection in used:
      other = used[family.projection]
      raise ValueError(f"{where} and config.model.encoders.{other} are both "
                       f"CLIP's {family.encoder} tower")
    used[family.projection] = m
    mapped[f"{m}_projection"] = linear(source, family.projection, bias=False)
  scale = source.take("logit_scale").reshape(())
  if float(scale) > MAX_LOGIT_SCALE + 1e-6:
    raise ValueError(f"config.model.init_from={init_from!r}: logit_scale="
                     f"{float(scale)} is above log(100)={MAX_LOGIT_SCALE:.6f}, "
                     f"the cap of mmjax's contrastive model (CLIP's training "
                     f"clamp); transformers.CLIPModel applies no cap, so its "
                     f"logits would differ")
  mapped["logit_scale"] = scale
  wanted = {k: expected[k] for k in mapped}
  return assemble(mapped, wanted, source, ("text_model.", "vision_model."))


def initialize_heads(config: ml_collections.ConfigDict,
                     params: Mapping[str, Any]) -> Tuple[Dict[str, Any], str]:
  """`params` with the projections and logit scale of
  `config.model.init_from` (`load_heads`) when the config has one.

  Returns:
    (params, the checkpoint loaded, "" when none was).

  Raises:
    see `load_heads`.
  """
  init_from = config.model.get("init_from", "")
  if not init_from:
    return dict(params), ""
  return {**params, **load_heads(config, params)}, init_from


@dataclasses.dataclass(frozen=True, eq=False)
class LoadedModel:
  """A contrastive model and its variables, ready for `embed`: from
  `load_clip`, or built from a trained run (`LoadedModel(model, params,
  config, batch_stats)` with its restored state).

  Attributes:
    model: the `ContrastiveModel`.
    params: its params (float32 arrays).
    config: the config it was built from (at least `modalities` and
      `model`).
    batch_stats: BatchNorm statistics of its encoders, `{}` for none (a
      CLIP has none).
  """
  model: ContrastiveModel
  params: Dict[str, Any]
  config: ml_collections.ConfigDict
  batch_stats: Dict[str, Any] = dataclasses.field(default_factory=dict)
  _compiled: Dict[str, Any] = dataclasses.field(default_factory=dict,
                                                repr=False)

  def variables(self) -> Dict[str, Any]:
    """`{"params", ["batch_stats"]}` for `model.apply`."""
    return ({"params": self.params, "batch_stats": self.batch_stats}
            if self.batch_stats else {"params": self.params})

  def embed_fn(self, modality: str):
    """`fn(variables, inputs)` -> `ContrastiveModel.embed` (inference:
    `train=False`), jitted once per modality."""
    if modality not in self._compiled:
      self._compiled[modality] = jax.jit(lambda variables, inputs: (
          self.model.apply(variables, inputs, modality,
                           method=ContrastiveModel.embed)))
    return self._compiled[modality]


def _example_inputs(config: ml_collections.ConfigDict) -> Dict[str, Any]:
  """One example per modality, in the shapes the checkpoint fixes."""
  hf_config = _clip_config(config.model.init_from, "config.model.init_from")
  image_size = int((hf_config.get("vision_config") or {}).get("image_size",
                                                              224))
  length = config.model.encoders.text.max_length
  return {"image": jnp.zeros((1, image_size, image_size, 3), jnp.float32),
          "text": {"token_ids": jnp.zeros((1, length), jnp.int32),
                   "token_mask": jnp.ones((1, length), bool)}}


def load_clip(checkpoint: str) -> LoadedModel:
  """The contrastive model of the CLIP in `checkpoint`, with its weights:
  no training, for zero-shot classification and retrieval.

  Raises:
    see `clip_model_config` and `load_heads`; WeightError for weights that
    do not fit.
  """
  config = clip_config(checkpoint)
  model = build_contrastive_model(config)
  abstract = jax.eval_shape(lambda: model.init(
      jax.random.key(0), _example_inputs(config)))["params"]
  params = flax.core.unfreeze(abstract)
  for m in config.modalities:
    kwargs, _ = split_options(config.model.encoders[m].to_dict())
    params[f"{m}_encoder"] = pretrained_load.load_hf_encoder(
        checkpoint, kwargs, abstract[f"{m}_encoder"],
        f"config.model.encoders.{m}")
  params, _ = initialize_heads(config, params)
  return LoadedModel(model, jax.tree.map(jnp.asarray, params), config)


def _apply_pp(spec: str, values: Sequence[Any]) -> Any:
  """`values` through the pp spec, stacked: `[n, ...]` (or a dict of them)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (host only)
  from mmjax.data.pp import builder  # pylint: disable=g-import-not-at-top
  op = builder.parse(spec)
  seed = tf.zeros([2], tf.int64)
  out = [op(tf.convert_to_tensor(v), seed) for v in values]
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *out)


def preprocess_images(checkpoint: str, images: Sequence[np.ndarray]
                      ) -> np.ndarray:
  """uint8 images `[h, w, c]` (any sizes; c = 1, 3, or 4 for RGBA) -> float32
  `[n, size, size, 3]`, as the checkpoint's `CLIPImageProcessor` (pp op
  `hf_image_preprocess`).

  Raises:
    ValueError: see `mmjax.data.pp.pretrained.hf_image_preprocess`.
  """
  return _apply_pp(clip_pp(checkpoint)["image"],
                   [np.asarray(x, np.uint8) for x in images])


def tokenize_texts(checkpoint: str, texts: Sequence[str],
                   max_length: Optional[int] = None) -> Dict[str, np.ndarray]:
  """Strings -> `{"token_ids": int32 [n, max_length], "token_mask": bool
  [n, max_length]}` by the checkpoint's tokenizer (pp op `tokenize`;
  default length its `max_position_embeddings`).

  Raises:
    ValueError: see `mmjax.data.pp.pretrained.tokenize`.
  """
  return _apply_pp(clip_pp(checkpoint, max_length)["text"], list(texts))


def embed(loaded: LoadedModel, inputs: Any, modality: str) -> jax.Array:
  """One modality's embeddings: float32 `[n, embed_dim]`, L2-normalised
  rows (`ContrastiveModel.embed`; `image_embeds` / `text_embeds` of
  `transformers.CLIPModel`).

  Args:
    loaded: from `load_clip` (or any contrastive model and its params).
    inputs: that modality's batch: float32 images `[n, h, w, 3]`
      (`preprocess_images`) or `{"token_ids", "token_mask"}` `[n, length]`
      (`tokenize_texts`).
    modality: one of `loaded.model.modalities`.

  Raises:
    KeyError: naming an unknown modality.
  """
  if modality not in loaded.model.modalities:
    raise KeyError(f"the model's modalities are "
                   f"{tuple(loaded.model.modalities)}, not {modality!r}")
  return loaded.embed_fn(modality)(loaded.variables(), inputs)


def zero_shot_logits(loaded: LoadedModel, a_embeddings: jax.Array,
                     b_embeddings: jax.Array) -> jax.Array:
  """float32 `[n_a, n_b]`: `logit_scale * a @ b.T` of embeddings from
  `embed` (the first modality's, e.g. images, against the second's, e.g.
  class prompts): `transformers.CLIPModel`'s `logits_per_image`. A softmax
  over the last axis gives zero-shot class probabilities."""
  scale = loaded.model.apply(loaded.variables(),
                             method=ContrastiveModel.logit_scale)
  return scale * jnp.asarray(a_embeddings) @ jnp.asarray(b_embeddings).T
