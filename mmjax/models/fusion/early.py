"""Early (feature-level) fusion: concatenate pooled modality features."""

from typing import Mapping, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.fusion.base import (FusionBlock, FusionOutput, Params,
                                      TokenTimes, modality_order)
from mmjax.models.fusion.common import Trunk, pool_modalities
from mmjax.models.registries import FUSION


@FUSION.register("early_fusion")
class EarlyFusion(FusionBlock):
  """Early fusion by concatenation of masked-mean pooled features.

  Each modality's valid tokens are averaged to `[batch, dim_m]`; the pooled
  features are concatenated in modality order (a missing modality's slot is
  zeros: that is what concatenation fusion does with a missing input) and
  passed through the trunk. With hidden layers, a zero slot is what removing
  the modality does (its rows of the first Dense drop out); without, the
  embedding keeps the zero slot. With one modality this is that modality's
  unimodal model. Snoek, Worring and Smeulders 2005, "Early versus Late
  Fusion in Semantic Video Analysis".

  Shapes: tokens `{m: [batch, tokens_m, dim_m]}` -> embedding
  `[batch, hidden_dims[-1]]` (`[batch, sum_m dim_m]` if `hidden_dims` is
  empty).

  Attributes:
    num_classes: number of classes (used by the model's head).
    hidden_dims: trunk hidden widths.
    dropout_rate: trunk dropout.
  """
  hidden_dims: Tuple[int, ...] = (256,)
  dropout_rate: float = 0.0

  def fuse(self, tokens: Mapping[str, jnp.ndarray],
           token_masks: Mapping[str, jnp.ndarray],
           present: Mapping[str, jnp.ndarray], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    _, pooled, _ = pool_modalities(tokens, token_masks, present)
    embedding = Trunk(self.hidden_dims, self.dropout_rate)(
        jnp.concatenate(pooled, axis=-1), train=train)
    return FusionOutput(embedding=embedding)

  def params_without_modality(self, params: Params, dims: Mapping[str, int],
                              modality: str) -> Optional[Params]:
    """Drops the modality's rows of the trunk's first Dense (None without
    hidden layers: the embedding itself has the modality's slot)."""
    if not self.hidden_dims:
      return None
    order = modality_order(dims)
    start = sum(dims[m] for m in order[:order.index(modality)])
    kernel = np.asarray(params["Trunk_0"]["Dense_0"]["kernel"])
    keep = np.r_[0:start, start + dims[modality]:kernel.shape[0]]
    trunk = dict(params["Trunk_0"])
    trunk["Dense_0"] = {**trunk["Dense_0"], "kernel": kernel[keep]}
    return {**params, "Trunk_0": trunk}
