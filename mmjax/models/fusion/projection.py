"""Token projection shared by the attention-based fusion blocks."""

from typing import Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.layers.masking import valid_tokens
from mmjax.models.layers.attention import AddPositionalEmbedding

Array = jnp.ndarray


class ProjectTokens(nn.Module):
  """One modality's valid tokens, projected to a common width with positions.

  Invalid tokens (padding, or a missing modality) are zeroed by
  `valid_tokens` before the projection; the returned mask tells the caller
  which tokens may be attended to and pooled.

  Attributes:
    dim: output width D.
    positional_embedding: "learned", "sinusoidal" or "time"
      (`AddPositionalEmbedding`; "time" needs the tokens' `times`).
  """
  dim: int
  positional_embedding: str = "learned"

  @nn.compact
  def __call__(self, tokens: Array, token_mask: Array,
               present: Array,
               times: Optional[np.ndarray] = None) -> Tuple[Array, Array]:
    """Projects.

    Args:
      tokens: float `[batch, tokens, dim_m]`.
      token_mask: bool `[batch, tokens]`.
      present: float32 `[batch]`.
      times: optional float `[tokens]`, each token's time in seconds.

    Returns:
      (float `[batch, tokens, dim]`, bool `[batch, tokens]` valid mask).
    """
    x, valid = valid_tokens(tokens, token_mask, present)
    x = nn.Dense(self.dim, name="dense")(x)
    x = AddPositionalEmbedding(self.positional_embedding, name="position")(x, times)
    return x, valid
