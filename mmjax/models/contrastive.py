"""The dual-encoder model of the contrastive objective (`config.objective =
"contrastive"`).

Two modalities (e.g. image and text), each through its own registered
encoder, are mapped into one shared embedding space where paired examples
are close: CLIP (Radford et al. 2021, "Learning Transferable Visual Models
From Natural Language Supervision"), trained with the symmetric InfoNCE
loss (van den Oord et al. 2018, "Representation Learning with Contrastive
Predictive Coding") of `mmjax.train.losses.contrastive_loss`.
"""

import math
from typing import Any, Dict, Mapping, Optional, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mmjax.models.layers.masking import masked_mean
from mmjax.models.registries import (ENCODERS, build_encoder,
                                     check_module_config, split_options)

# CLIP's initial temperature 0.07 and its cap on the logit scale, 100.
INIT_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = math.log(100.0)


@flax.struct.dataclass
class ContrastiveOutput:
  """What `ContrastiveModel` returns.

  Attributes:
    embeddings: `{modality: float32 [batch, embed_dim]}`, L2-normalised
      rows (norm 1; a zero vector stays 0), for both modalities of the
      model.
    logit_scale: float32 scalar, the factor on the cosine similarities,
      `exp(min(logit_scale parameter, log 100))` (1 / temperature).
  """
  embeddings: Dict[str, jax.Array]
  logit_scale: jax.Array


def l2_normalize(x: jnp.ndarray, epsilon: float = 1e-12) -> jnp.ndarray:
  """`x / max(||x||, sqrt(epsilon))` along the last axis."""
  norm_sq = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(norm_sq, epsilon))


class ContrastiveModel(nn.Module):
  """Two encoders -> pooled, projected, L2-normalised embeddings.

  For each of the two modalities: its encoder gives tokens `[batch, tokens,
  dim_m]` and a mask; their masked mean `[batch, dim_m]` (sown as
  intermediate `<modality>_embedding`, as in `MultimodalModel`) goes
  through a Dense projection without bias (`<modality>_projection`, as
  CLIP's) to `[batch, embed_dim]`, computed in float32 from there on and
  L2-normalised. A learned scalar `logit_scale` holds the log of the
  similarity scale (CLIP: initialised to log(1 / 0.07); the scale is
  clipped to at most 100 in the forward pass, so above log(100) the
  parameter gets no gradient, where CLIP clamps the stored value after each
  step: the same forward values). Under the train step's mixed precision
  the parameter is rounded to the compute dtype like every other (bfloat16:
  the scale moves by up to 0.4%).

  Parameters: `<modality>_encoder`, `<modality>_projection`, `logit_scale`.
  Encoders load pretrained weights with `init_from` as in the classifier
  (`mmjax.pretrained`); projections and the scale start from scratch, or
  from a CLIP checkpoint's with `config.model.init_from`
  (`mmjax.pretrained.clip`).

  Attributes:
    modalities: the two modalities, e.g. ("image", "text"); the first is
      "a" and the second "b" of the losses and metrics ("a_to_b").
    encoders: `{modality: {"name": registered encoder, **its attributes}}`.
    embed_dim: width of the shared embedding space.
    init_logit_scale: initial value of the log-scale parameter.
    max_logit_scale: the cap on the log scale.
  """
  modalities: Sequence[str]
  encoders: Mapping[str, Mapping[str, Any]]
  embed_dim: int
  init_logit_scale: float = INIT_LOGIT_SCALE
  max_logit_scale: float = MAX_LOGIT_SCALE

  def setup(self):
    if len(self.modalities) != 2:
      raise ValueError(f"the contrastive model needs exactly two modalities, "
                       f"got {tuple(self.modalities)}")
    encoders, projections = {}, {}
    for m in self.modalities:
      encoders[m] = build_encoder(self.encoders[m], name=f"{m}_encoder")
      projections[m] = nn.Dense(self.embed_dim, use_bias=False,
                                name=f"{m}_projection")
    self._encoders = encoders
    self._projections = projections
    self.log_logit_scale = self.param(
        "logit_scale", nn.initializers.constant(self.init_logit_scale), (),
        jnp.float32)

  def embed(self, inputs: Any, modality: str, *,
            train: bool = False) -> jnp.ndarray:
    """One modality's embeddings (used for zero-shot class texts).

    Args:
      inputs: that modality's batch, e.g. images `[batch, h, w, c]` or
        `{"token_ids", "token_mask"}` `[batch, length]`.
      modality: one of `modalities`.
      train: enables dropout, augmentation layers and batch statistics.

    Returns:
      float32 `[batch, embed_dim]`, L2-normalised rows.
    """
    tokens, token_mask = self._encoders[modality](inputs, train=train)
    pooled = masked_mean(tokens, token_mask.astype(bool))
    self.sow("intermediates", f"{modality}_embedding", pooled)
    projected = self._projections[modality](pooled)
    return l2_normalize(projected.astype(jnp.float32))

  def logit_scale(self) -> jnp.ndarray:
    """float32 scalar `exp(min(log scale, max_logit_scale))`."""
    return jnp.exp(jnp.minimum(self.log_logit_scale.astype(jnp.float32),
                               self.max_logit_scale))

  def __call__(self, inputs: Mapping[str, Any],
               present: Optional[Mapping[str, jnp.ndarray]] = None, *,
               train: bool = False) -> ContrastiveOutput:
    """Embeds a batch of pairs.

    Args:
      inputs: `{modality: [batch, ...]}` for both modalities (other keys,
        such as "label" or "mask", are ignored).
      present: must be None: a pair without one of its halves has nothing
        to contrast (the argument exists for the train step's uniform call).
      train: enables dropout, augmentation layers and batch statistics.

    Returns:
      `ContrastiveOutput`: float32 `[batch, embed_dim]` per modality and the
      float32 scalar logit scale.

    Raises:
      KeyError: naming a modality the batch lacks.
      ValueError: when `present` is given.
    """
    if present is not None:
      raise ValueError("the contrastive model has no missing modalities: "
                       "config.modality_dropout and presence masks are for "
                       "config.objective='classification'")
    for m in self.modalities:
      if m not in inputs:
        raise KeyError(f"batch has no {m!r} input; it has {sorted(inputs)}")
    return ContrastiveOutput(
        embeddings={m: self.embed(inputs[m], m, train=train)
                    for m in self.modalities},
        logit_scale=self.logit_scale())


def build_contrastive_model(config: ml_collections.ConfigDict
                            ) -> ContrastiveModel:
  """The dual encoder of `config.modalities` (exactly two),
  `config.model.encoders` and `config.model.embed_dim`.

  Raises:
    ValueError: unless `config.modalities` has exactly two modalities, or
      for a `config.model.embed_dim` < 1 or missing, or naming an encoder
      config key that is not an attribute of the named encoder.
    KeyError: for an unregistered encoder name, or a modality without an
      entry in `config.model.encoders`.
  """
  modalities = tuple(config.modalities)
  if len(modalities) != 2:
    raise ValueError(f"config.objective='contrastive' needs exactly two "
                     f"modalities in config.modalities, got {modalities}")
  embed_dim = config.model.get("embed_dim")
  if not isinstance(embed_dim, int) or embed_dim < 1:
    raise ValueError(f"config.model.embed_dim must be a positive int for "
                     f"config.objective='contrastive', got {embed_dim!r}")
  model = config.model.to_dict()
  for m in modalities:
    if m not in model["encoders"]:
      raise KeyError(f"config.model.encoders has no entry for modality {m!r}")
    check_module_config(ENCODERS, model["encoders"][m],
                        f"config.model.encoders.{m}")
  return ContrastiveModel(
      modalities=modalities,
      encoders={m: split_options(model["encoders"][m])[0] for m in modalities},
      embed_dim=embed_dim)
