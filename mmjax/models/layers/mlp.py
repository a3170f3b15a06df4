"""Small shared layers: MLP and token pooling."""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
  """Dense -> GELU -> dropout, repeated, then a final Dense.

  Attributes:
    hidden_dims: widths of the hidden layers.
    out_dim: width of the output.
    dropout_rate: dropout after each hidden activation (training only).
  """
  hidden_dims: Sequence[int]
  out_dim: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """`[..., in_dim]` -> `[..., out_dim]`."""
    for width in self.hidden_dims:
      x = nn.gelu(nn.Dense(width)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.out_dim)(x)


def mean_tokens(tokens: jnp.ndarray) -> jnp.ndarray:
  """Average pooling over tokens: `[batch, tokens, dim]` -> `[batch, dim]`."""
  return tokens.mean(axis=1)
