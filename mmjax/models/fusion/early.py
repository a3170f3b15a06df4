"""Early (feature-level) fusion: concatenate pooled modality features."""

from typing import Mapping, Tuple

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.fusion.base import FusionOutput, TokenTimes
from mmjax.models.fusion.common import Trunk, pool_modalities
from mmjax.models.registries import FUSION


@FUSION.register("early_fusion")
class EarlyFusion(nn.Module):
  """Early fusion by concatenation of masked-mean pooled features.

  Each modality's valid tokens are averaged to `[batch, dim_m]`; the pooled
  features are concatenated in modality order (a missing modality's slot is
  zeros: that is what concatenation fusion does with a missing input) and
  passed through the trunk. With one modality this is that modality's
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
  num_classes: int
  hidden_dims: Tuple[int, ...] = (256,)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, tokens: Mapping[str, jnp.ndarray],
               token_masks: Mapping[str, jnp.ndarray],
               present: Mapping[str, jnp.ndarray], *,
               train: bool,
               token_times: TokenTimes = None) -> FusionOutput:
    """Fuses modalities; see `mmjax.models.fusion.base` for the arguments."""
    _, pooled, _ = pool_modalities(tokens, token_masks, present)
    embedding = Trunk(self.hidden_dims, self.dropout_rate)(
        jnp.concatenate(pooled, axis=-1), train=train)
    self.sow("intermediates", "fused_embedding", embedding)
    return FusionOutput(embedding=embedding)
