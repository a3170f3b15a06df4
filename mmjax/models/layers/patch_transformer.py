"""Patch embedding -> (CLS) -> positions -> Transformer -> pooling.

The trunk shared by the ViT image encoder (Dosovitskiy et al. 2021, "An Image
is Worth 16x16 Words") and the Audio Spectrogram Transformer (Gong et al.
2021, "AST: Audio Spectrogram Transformer"), which differ only in what grid
they cut into patches.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.layers.attention import (AddPositionalEmbedding,
                                           TransformerEncoder)

POOLS = ("none", "cls", "mean")


class PatchTransformer(nn.Module):
  """Non-overlapping patches of a 2-D grid, encoded by a pre-LN Transformer.

  Patches are embedded by a Conv with kernel = stride = `patch_size` (a
  linear map of each flattened patch, as in ViT), in row-major order over the
  grid; positional embeddings are added to every token (CLS included).

  Attributes:
    patch_size: (rows, columns) of a patch.
    hidden_dim: token width D.
    num_layers: Transformer layers.
    num_heads: attention heads (must divide hidden_dim).
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the Transformer (training only).
    pool: "none" (every patch token), "cls" (a learned CLS token is
      prepended and only its output is returned) or "mean" (mean of the
      patch tokens).
    positional_embedding: "learned" or "sinusoidal" (`AddPositionalEmbedding`).
  """
  patch_size: Sequence[int] = (4, 4)
  hidden_dim: int = 128
  num_layers: int = 4
  num_heads: int = 4
  mlp_dim: int = 256
  dropout_rate: float = 0.0
  pool: str = "none"
  positional_embedding: str = "learned"

  @nn.compact
  def __call__(self, grid: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Encodes a grid.

    Args:
      grid: float `[batch, rows, columns, channels]`; rows and columns must
        be multiples of `patch_size` (callers check, with their own message).
      train: enables dropout.

    Returns:
      float32 `[batch, (rows / pr) * (columns / pc), hidden_dim]` for pool
      "none", `[batch, 1, hidden_dim]` for "cls" and "mean".

    Raises:
      ValueError: for an unknown `pool`, or a grid that is not a whole number
        of patches.
    """
    if self.pool not in POOLS:
      raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
    patch = tuple(self.patch_size)
    if grid.shape[1] % patch[0] or grid.shape[2] % patch[1]:
      raise ValueError(f"grid {grid.shape[1:3]} is not a whole number of "
                       f"patches of patch_size={patch}")
    x = nn.Conv(self.hidden_dim, patch, strides=patch, padding="VALID",
                name="patch_embedding")(grid)
    x = x.reshape(x.shape[0], -1, self.hidden_dim)
    if self.pool == "cls":
      cls = self.param("cls", nn.initializers.zeros, (1, 1, self.hidden_dim),
                       jnp.float32)
      x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, x.shape[2])),
                           x], axis=1)
    x = AddPositionalEmbedding(self.positional_embedding, name="position")(x)
    x = TransformerEncoder(self.num_layers, self.num_heads, self.mlp_dim,
                           self.dropout_rate, name="encoder")(x, train=train)
    if self.pool == "cls":
      return x[:, :1]
    if self.pool == "mean":
      return x.mean(axis=1, keepdims=True)
    return x
