"""Weighted fusion: a learned softmax weight per modality."""

from typing import Mapping, Tuple

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.fusion.base import FusionBlock, FusionOutput, TokenTimes
from mmjax.models.fusion.common import (Trunk, pool_modalities,
                                        present_softmax, project)
from mmjax.models.registries import FUSION


@FUSION.register("weighted")
class WeightedFusion(FusionBlock):
  """Weighted sum of per-modality projections with learned modality weights.

  One logit per modality (initialised to 0, i.e. equal weights) gives
  softmax weights, renormalised in each example over its present modalities
  (a missing modality gets weight 0); the fused vector is the weighted sum of
  the modalities' `Dense(dim)` projections of their masked-mean pooled
  features, followed by the trunk. Weighted-sum fusion of modality
  representations as surveyed in Baltrusaitis, Ahuja and Morency 2019,
  "Multimodal Machine Learning: A Survey and Taxonomy". Sows
  `modality_weights` `[batch, modalities]` (modality order).

  Shapes: tokens `{m: [batch, tokens_m, dim_m]}` -> embedding
  `[batch, dim]` (`[batch, hidden_dims[-1]]` with hidden layers).

  Attributes:
    num_classes: number of classes (used by the model's head).
    dim: projection width.
    hidden_dims: trunk hidden widths.
    dropout_rate: trunk dropout.
  """
  dim: int = 128
  hidden_dims: Tuple[int, ...] = ()
  dropout_rate: float = 0.0

  modality_indexed_params = ("modality_weight_logits",)

  def fuse(self, tokens: Mapping[str, jnp.ndarray],
           token_masks: Mapping[str, jnp.ndarray],
           present: Mapping[str, jnp.ndarray], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    order, pooled, is_present = pool_modalities(tokens, token_masks, present)
    stacked = jnp.stack(project(order, pooled, self.dim), axis=1)
    weight_logits = self.param("modality_weight_logits", nn.initializers.zeros,
                               (len(order),), jnp.float32)
    weights = present_softmax(
        jnp.broadcast_to(weight_logits, is_present.shape), is_present)
    self.sow("intermediates", "modality_weights", weights)
    fused = jnp.einsum("bm,bmd->bd", weights, stacked)
    embedding = Trunk(self.hidden_dims, self.dropout_rate)(fused, train=train)
    return FusionOutput(embedding=embedding)
