"""The multimodal classifier: one encoder per modality, a fusion block, a head."""

from typing import Any, Dict, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mmjax.models.layers.masking import masked_mean
from mmjax.models.registries import (ENCODERS, FUSION, build_encoder,
                                     check_module_config, split_options)


def keep_reliable(present: Mapping[str, jnp.ndarray],
                  reliability_logits: Mapping[str, jnp.ndarray],
                  threshold: float) -> Dict[str, jnp.ndarray]:
  """The presence masks with each unreliable modality marked missing.

  A present modality is kept when its reliability head's probability that
  the input is clean, `sigmoid(logit)`, is at least `threshold`; an example
  that would lose every present modality keeps the most reliable one (so
  no example is left empty, and a model with one modality keeps it).

  Args:
    present: `{modality: float32 [batch]}`, 0.0 where missing.
    reliability_logits: `{modality: float [batch]}`; modalities of
      `present` without one are returned unchanged.
    threshold: probability in (0, 1).

  Returns:
    `{modality: float32 [batch]}`, 1.0 kept, 0.0 missing or dropped.
  """
  names = [m for m in present if m in reliability_logits]
  is_present = jnp.stack([present[m] > 0.5 for m in names], axis=1)
  prob = jax.nn.sigmoid(jnp.stack(
      [reliability_logits[m].astype(jnp.float32) for m in names], axis=1))
  keep = is_present & (prob >= threshold)
  best = jax.nn.one_hot(jnp.where(is_present, prob, -1.0).argmax(axis=1),
                        len(names), dtype=bool) & is_present
  keep = jnp.where(keep.any(axis=1, keepdims=True), keep, best)
  return {**present, **{m: keep[:, i].astype(jnp.float32)
                        for i, m in enumerate(names)}}


class MultimodalModel(nn.Module):
  """`{modality: inputs}` -> encoders -> fusion block -> classifier head.

  Each encoder turns its modality into tokens `[batch, tokens, dim]` and a
  token mask (and, when it has a time axis, gives its tokens' times in seconds
  through its `token_times` method, passed on to the fusion block); the fusion block (`mmjax.models.fusion.base`) returns a
  `FusionOutput`; a Dense head maps its embedding to logits, unless the block
  is decision-level and returns logits itself. Extra losses (e.g. of a
  block) go to the "losses" collection; the train step adds them.

  Each modality's embedding (the masked mean of its encoder tokens,
  `[batch, dim_m]`) is sown as intermediate `<modality>_embedding` for
  analyses. With `aux_heads`, a Dense classifier per modality maps it to
  logits sown into the "modality_logits" collection (`{modality: [batch,
  num_classes]}`), for the unimodal auxiliary losses and OGM-GE of
  `mmjax.train.balancing`; they see the encoder output whether or not the
  modality is marked missing for the fusion block. With `reliability_heads`,
  a Dense(1) per modality on the same embedding gives the logit that the
  modality's input is clean (not corrupted), sown into "reliability"
  (`{modality: [batch]}`, trained by `mmjax.train.corruption_training`) and
  its probability into "intermediates" as `<modality>_reliability`; at
  inference (`train=False`) a modality whose probability is below
  `reliability_threshold` is marked missing for that example before the
  fusion block (`keep_reliable`): the learned "drop this modality" decision.

  Attributes:
    modalities: modalities used, e.g. ("image", "audio"); a single one gives
      the unimodal baseline with the same code.
    encoders: `{modality: {"name": registered encoder, **its attributes}}`.
    fusion: `{"name": registered fusion block, **its attributes}`.
    num_classes: number of output classes.
    aux_heads: add the unimodal auxiliary classifier heads.
    reliability_heads: add the per-modality reliability heads and, at
      inference, drop the modalities they judge corrupted.
    reliability_threshold: the probability of a clean input below which a
      modality is dropped, in (0, 1).
  """
  modalities: Sequence[str]
  encoders: Mapping[str, Mapping[str, Any]]
  fusion: Mapping[str, Any]
  num_classes: int
  aux_heads: bool = False
  reliability_heads: bool = False
  reliability_threshold: float = 0.5

  @nn.compact
  def __call__(self, inputs: Mapping[str, jnp.ndarray],
               present: Optional[Mapping[str, jnp.ndarray]] = None, *,
               train: bool = False) -> jnp.ndarray:
    """Classifies a batch.

    Args:
      inputs: `{modality: [batch, ...]}` for every modality of the model
        (other keys, such as "label", are ignored).
      present: optional `{modality: float32 [batch]}`, 0.0 where a modality
        is missing for an example; default all present.
      train: enables dropout, data augmentation layers and batch statistics.

    Returns:
      float32 logits `[batch, num_classes]`.

    Raises:
      KeyError: naming a modality the batch lacks.
    """
    tokens, token_masks, token_times, reliability = {}, {}, {}, {}
    for m in self.modalities:
      if m not in inputs:
        raise KeyError(f"batch has no {m!r} input; it has {sorted(inputs)}")
      encoder = build_encoder(self.encoders[m], name=f"{m}_encoder")
      tokens[m], token_masks[m] = encoder(inputs[m], train=train)
      if hasattr(encoder, "token_times"):
        token_times[m] = encoder.token_times(tokens[m].shape[1])
      embedding = masked_mean(tokens[m], token_masks[m].astype(bool))
      self.sow("intermediates", f"{m}_embedding", embedding)
      if self.aux_heads:
        self.sow("modality_logits", m, nn.Dense(
            self.num_classes, name=f"{m}_aux_head")(embedding))
      if self.reliability_heads:
        reliability[m] = nn.Dense(1, name=f"{m}_reliability_head")(
            embedding)[:, 0]
        self.sow("reliability", m, reliability[m])
        self.sow("intermediates", f"{m}_reliability",
                 jax.nn.sigmoid(reliability[m].astype(jnp.float32)))
    batch = next(iter(tokens.values())).shape[0]
    if present is None:
      present = {m: jnp.ones((batch,), jnp.float32) for m in self.modalities}
    if reliability and not train:
      present = keep_reliable(present, reliability, self.reliability_threshold)
    kwargs = dict(self.fusion)
    fusion_cls = FUSION.get(kwargs.pop("name"))
    out = fusion_cls(num_classes=self.num_classes, **kwargs, name="fusion")(
        tokens, token_masks, present, train=train,
        token_times=token_times or None)
    if out.logits is not None:
      return out.logits
    return nn.Dense(self.num_classes, name="head")(out.embedding)


def build_classifier(config: ml_collections.ConfigDict) -> MultimodalModel:
  """The classifier described by `config.modalities` and `config.model`,
  with unimodal auxiliary heads when `config.aux_loss_weight` > 0 and
  reliability heads when `config.reliability.loss_weight` > 0 (dropping at
  `config.reliability.threshold`).

  Raises:
    KeyError: when an encoder or fusion name is not registered, or a modality
      of `config.modalities` has no entry in `config.model.encoders`.
    ValueError: naming the config key that is not an attribute of the named
      encoder or fusion block.
  """
  model = config.model.to_dict()
  reliability = config.get("reliability") or {}
  for m in config.modalities:
    if m not in model["encoders"]:
      raise KeyError(f"config.model.encoders has no entry for modality {m!r}")
    check_module_config(ENCODERS, model["encoders"][m],
                        f"config.model.encoders.{m}")
  check_module_config(FUSION, model["fusion"], "config.model.fusion")
  return MultimodalModel(
      modalities=tuple(config.modalities),
      encoders={m: split_options(model["encoders"][m])[0]
                for m in config.modalities},
      fusion=model["fusion"],
      num_classes=model["num_classes"],
      aux_heads=config.get("aux_loss_weight", 0.0) > 0,
      reliability_heads=reliability.get("loss_weight", 0.0) > 0,
      reliability_threshold=reliability.get("threshold", 0.5))
