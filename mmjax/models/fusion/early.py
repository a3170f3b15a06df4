"""Feature-level fusion: concatenate pooled modality features, then an MLP."""

from typing import Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.layers.mlp import MLP, mean_tokens
from mmjax.models.registries import FUSION


@FUSION.register("early_fusion")
class EarlyFusion(nn.Module):
  """Early (feature-level) fusion by concatenation.

  Each modality's tokens are mean-pooled to `[batch, dim]`, zeroed where the
  modality is absent, concatenated in a fixed modality order and classified
  by an MLP. With one modality this is that modality's unimodal classifier.

  Attributes:
    num_classes: number of output classes.
    hidden_dims: MLP hidden widths.
    dropout_rate: dropout on the fused features and in the MLP.
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
    pooled = [mean_tokens(tokens[m]) * present[m][:, None]
              for m in sorted(tokens)]
    x = jnp.concatenate(pooled, axis=-1)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return MLP(self.hidden_dims, self.num_classes, self.dropout_rate)(
        x, train=train)
