"""Decision-level fusion: one classifier per modality, logits averaged."""

from typing import Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.layers.mlp import MLP, mean_tokens
from mmjax.models.registries import FUSION


@FUSION.register("late_fusion")
class LateFusion(nn.Module):
  """Late (decision-level) fusion by averaging per-modality logits.

  Each modality gets its own MLP classifier over its mean-pooled tokens; the
  fused logits are the mean of the logits of the modalities present in each
  example (an example with none present gets zero logits).

  Attributes:
    num_classes: number of output classes.
    hidden_dims: hidden widths of each per-modality MLP.
    dropout_rate: dropout in the MLPs.
  """
  num_classes: int
  hidden_dims: Sequence[int] = (256,)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, tokens: Mapping[str, jnp.ndarray],
               present: Mapping[str, jnp.ndarray], *,
               train: bool) -> jnp.ndarray:
    """Fuses modalities.

    Args:
      tokens: `{modality: float32 [batch, tokens, dim]}`.
      present: `{modality: float32 [batch]}`, 1 where the modality is present.
      train: enables dropout.

    Returns:
      logits, float32 `[batch, num_classes]`.
    """
    total = 0.0
    for m in sorted(tokens):
      logits = MLP(self.hidden_dims, self.num_classes, self.dropout_rate,
                   name=f"{m}_classifier")(mean_tokens(tokens[m]), train=train)
      total = total + logits * present[m][:, None]
    count = sum(present[m] for m in tokens)[:, None]
    return total / jnp.maximum(count, 1.0)
