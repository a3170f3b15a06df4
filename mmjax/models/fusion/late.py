"""Late (decision-level) fusion: a classifier per modality, then a combine rule.

The combine rules are pure functions of stacked per-modality logits
`[batch, modalities, classes]` and bool presence `[batch, modalities]`.
"""

from typing import Literal, Mapping, Tuple, get_args

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmjax.models.fusion.base import FusionBlock, FusionOutput, TokenTimes
from mmjax.models.layers.masking import masked_mean
from mmjax.models.fusion.common import Trunk, pool_modalities, present_softmax
from mmjax.models.registries import FUSION

Array = jnp.ndarray

Combine = Literal["average", "weighted", "vote"]
COMBINES = get_args(Combine)


def average_combine(logits: Array, is_present: Array) -> Array:
  """Mean of the present modalities' logits; zeros where none is present."""
  return masked_mean(logits, is_present)


def weighted_combine(logits: Array, weights: Array) -> Array:
  """`sum_m weights[b, m] * logits[b, m]`; weights are 0 for missing ones."""
  return jnp.einsum("bm,bmc->bc", weights, logits)


def log_prob_mean(logits: Array, is_present: Array) -> Array:
  """Mean of the present modalities' log-softmax (the vote's training form)."""
  return masked_mean(jax.nn.log_softmax(logits), is_present)


def vote_combine(logits: Array, is_present: Array) -> Array:
  """Majority vote of the present modalities, as logits.

  Each present modality votes for its argmax class; ties are broken by the
  probabilities summed over the present modalities. With P the number of
  present modalities, the score `votes + summed_probs / (P + 1)` is returned
  as `log(score / score.sum())`: summed probabilities are below P + 1, so
  the tie-break is below one vote and can never overturn a vote difference,
  and the result depends on the present modalities only. A score of 0 is clamped to the
  smallest positive float before the log, and an example with no modality
  present gets zero (uniform) logits, so the output is always finite.

  Args:
    logits: float `[batch, M, classes]`.
    is_present: bool `[batch, M]`.

  Returns:
    float `[batch, classes]`.
  """
  num_classes = logits.shape[-1]
  mask = is_present[..., None]
  num_present = is_present.sum(axis=1, keepdims=True).astype(logits.dtype)
  votes = jnp.where(
      mask, jax.nn.one_hot(logits.argmax(-1), num_classes, dtype=logits.dtype),
      0.0).sum(axis=1)
  probs = jnp.where(mask, jax.nn.softmax(logits), 0.0).sum(axis=1)
  score = votes + probs / (num_present + 1)
  share = score / jnp.maximum(score.sum(-1, keepdims=True),
                              jnp.finfo(score.dtype).tiny)
  out = jnp.log(jnp.maximum(share, jnp.finfo(score.dtype).tiny))
  return jnp.where(is_present.any(axis=1, keepdims=True), out, 0.0)


@FUSION.register("late_fusion")
class LateFusion(FusionBlock):
  """Late fusion: a classifier per modality, combined over present modalities.

  Snoek, Worring and Smeulders 2005, "Early versus Late Fusion in Semantic
  Video Analysis". Each modality's masked-mean pooled features go through its
  own trunk and `Dense(num_classes)`; `combine` merges the logits of the
  modalities present in each example:

  - "average": mean of their logits.
  - "weighted": learned softmax modality weights (one logit per modality,
    initialised to 0), renormalised over the present modalities; sows
    `modality_weights` `[batch, modalities]`.
  - "vote": majority vote, ties broken by summed probabilities (see
    `vote_combine`). Voting has no gradient, so with `train=True` it returns
    the mean of the present modalities' log-softmax instead (`log_prob_mean`),
    which is what the model is then trained on.

  An example with no modality present gets zero logits. A missing modality
  is left out of every combination: the logits equal those of the same
  classifiers combined over the present modalities only.

  Shapes: tokens `{m: [batch, tokens_m, dim_m]}` -> embedding
  `[batch, M * hidden_dims[-1]]` (the per-modality hidden features in
  modality order, zeros where missing), logits `[batch, num_classes]`,
  modality_logits `{m: [batch, num_classes]}` (zeros where missing).

  Attributes:
    num_classes: number of classes.
    hidden_dims: trunk hidden widths of each per-modality classifier.
    dropout_rate: trunk dropout.
    combine: "average", "weighted" or "vote".
  """
  hidden_dims: Tuple[int, ...] = (256,)
  dropout_rate: float = 0.0
  combine: Combine = "average"

  modality_indexed_params = ("modality_weight_logits",)

  def fuse(self, tokens: Mapping[str, jnp.ndarray],
           token_masks: Mapping[str, jnp.ndarray],
           present: Mapping[str, jnp.ndarray], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    """Raises ValueError for an unknown `combine`."""
    if self.combine not in COMBINES:
      raise ValueError(f"late_fusion: unknown combine {self.combine!r}; "
                       f"expected one of {COMBINES}")
    order, pooled, is_present = pool_modalities(tokens, token_masks, present)
    hidden, logits = [], []
    for i, m in enumerate(order):
      h = Trunk(self.hidden_dims, self.dropout_rate, name=f"{m}_trunk")(
          pooled[i], train=train)
      hidden.append(jnp.where(is_present[:, i, None], h, 0.0))
      logits.append(jnp.where(
          is_present[:, i, None],
          nn.Dense(self.num_classes, name=f"{m}_classifier")(h), 0.0))
    stacked = jnp.stack(logits, axis=1)
    if self.combine == "average":
      fused = average_combine(stacked, is_present)
    elif self.combine == "weighted":
      weight_logits = self.param("modality_weight_logits",
                                 nn.initializers.zeros, (len(order),),
                                 jnp.float32)
      weights = present_softmax(
          jnp.broadcast_to(weight_logits, is_present.shape), is_present)
      self.sow("intermediates", "modality_weights", weights)
      fused = weighted_combine(stacked, weights)
    elif train:
      fused = log_prob_mean(stacked, is_present)
    else:
      fused = vote_combine(stacked, is_present)
    return FusionOutput(embedding=jnp.concatenate(hidden, axis=-1), logits=fused,
                        modality_logits=dict(zip(order, logits)))
