"""Multi-head attention, positional embeddings and the pre-LayerNorm Transformer.

Every attention-based encoder and fusion block in mmjax is written with these
layers. Attention goes through `jax.nn.dot_product_attention`, so on an NVIDIA
GPU the same code can take the fused cuDNN kernel, and on CPU/TPU XLA's.

Shapes: B batch, T query tokens, S key/value tokens, D model width,
N heads, H head width.

References: Vaswani et al. 2017, "Attention Is All You Need" (attention,
sinusoidal positions); Xiong et al. 2020, "On Layer Normalization in the
Transformer Architecture" (pre-LayerNorm); Dosovitskiy et al. 2021 (learned
positions, as in ViT).
"""

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray


def attend(query: Array, key: Array, value: Array, key_mask: Array) -> Array:
  """Softmax attention of every query over the valid keys.

  Args:
    query: float `[B, T, N, H]`.
    key: float `[B, S, N, H]`.
    value: float `[B, S, N, H]`.
    key_mask: bool `[B, S]`, True for keys that may be attended to.

  Returns:
    float `[B, T, N, H]`. A query whose example has no valid key gets zeros
    (rather than an average over masked keys).
  """
  valid = key_mask[:, :, None, None]
  # Masked keys/values are zeroed so that NaN or inf in them cannot leak
  # through 0-weight products (0 * NaN = NaN).
  key = jnp.where(valid, key, 0.0)
  value = jnp.where(valid, value, 0.0)
  out = jax.nn.dot_product_attention(query, key, value,
                                     mask=key_mask[:, None, None, :])
  return jnp.where(key_mask.any(axis=1)[:, None, None, None], out, 0.0)


def attention_weights(query: Array, key: Array, key_mask: Array) -> Array:
  """Explicit softmax attention weights, for analysis (sown, never trained on).

  Args:
    query: float `[B, T, N, H]`; key: float `[B, S, N, H]`;
    key_mask: bool `[B, S]`.

  Returns:
    float32 `[B, N, T, S]`; rows sum to 1 over valid keys, or are all 0 when
    an example has no valid key.
  """
  logits = jnp.einsum("btnh,bsnh->bnts", query, key) / np.sqrt(query.shape[-1])
  mask = key_mask[:, None, None, :]
  logits = jnp.where(mask, logits, -jnp.inf)
  weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1, where=mask)
  return jnp.where(mask, weights, 0.0)


class MultiHeadAttention(nn.Module):
  """Multi-head dot-product attention with a key mask (self or cross).

  Parameter names (`query`, `key`, `value`, `out`, each a DenseGeneral) follow
  `flax.linen.MultiHeadDotProductAttention`, so pretrained weights map one to
  one. When the "intermediates" collection is mutable (analysis), the weights
  `[B, N, T, S]` are sown as `attention_weights`; training never computes them.

  Attributes:
    num_heads: N.
    head_dim: H; default D // num_heads.
    out_dim: output width; default the query width D.
    dropout_rate: dropout on the output projection (training only).

  Raises:
    ValueError: when `head_dim` is unset and D is not divisible by num_heads.
  """
  num_heads: int
  head_dim: Optional[int] = None
  out_dim: Optional[int] = None
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, query: Array, key_value: Optional[Array] = None,
               key_mask: Optional[Array] = None, *, train: bool = False) -> Array:
    """Attends from `query` to `key_value`.

    Args:
      query: float `[B, T, D]`.
      key_value: float `[B, S, Dk]`; None for self-attention (`query`).
      key_mask: bool `[B, S]`; None: every key is valid.
      train: enables dropout.

    Returns:
      float `[B, T, out_dim or D]`.
    """
    key_value = query if key_value is None else key_value
    width = query.shape[-1]
    head_dim = self.head_dim
    if head_dim is None:
      if width % self.num_heads:
        raise ValueError(f"attention width {width} is not divisible by "
                         f"num_heads={self.num_heads}")
      head_dim = width // self.num_heads
    if key_mask is None:
      key_mask = jnp.ones(key_value.shape[:2], bool)
    key_mask = key_mask.astype(bool)
    dense = lambda name: nn.DenseGeneral((self.num_heads, head_dim), name=name)
    q = dense("query")(query)
    k = dense("key")(key_value)
    v = dense("value")(key_value)
    if self.is_mutable_collection("intermediates"):
      self.sow("intermediates", "attention_weights",
               attention_weights(q, k, key_mask))
    out = attend(q, k, v, key_mask)
    out = nn.DenseGeneral(self.out_dim or width, axis=(-2, -1), name="out")(out)
    return nn.Dropout(self.dropout_rate, deterministic=not train)(out)


def sinusoidal_positional_embedding(length: int, dim: int,
                                    max_timescale: float = 10_000.0) -> Array:
  """Fixed sin/cos positions (Vaswani et al. 2017): float32 `[length, dim]`.

  Channels `[0, dim/2)` are sines, `[dim/2, dim)` cosines, with timescales
  geometric from 1 to `max_timescale`.

  Raises:
    ValueError: for an odd `dim`.
  """
  if dim % 2:
    raise ValueError(f"sinusoidal positional embedding needs an even dim, got {dim}")
  half = dim // 2
  inv_timescales = max_timescale ** (-np.arange(half) / max(half - 1, 1))
  angles = np.arange(length)[:, None] * inv_timescales[None, :]
  return jnp.asarray(np.concatenate([np.sin(angles), np.cos(angles)], axis=1),
                     jnp.float32)


class AddPositionalEmbedding(nn.Module):
  """Adds positional embeddings to `[B, T, D]` tokens.

  Attributes:
    kind: "learned" (a `[1, T, D]` parameter, N(0, 0.02) init, as in ViT and
      BERT) or "sinusoidal" (fixed, no parameters).

  Raises:
    ValueError: for another `kind`.
  """
  kind: str = "learned"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """`[B, T, D]` -> `[B, T, D]`."""
    _, length, dim = x.shape
    if self.kind == "learned":
      pos = self.param("embedding", nn.initializers.normal(0.02),
                       (1, length, dim), jnp.float32)
    elif self.kind == "sinusoidal":
      pos = sinusoidal_positional_embedding(length, dim)[None]
    else:
      raise ValueError(f"positional embedding kind must be 'learned' or "
                       f"'sinusoidal', got {self.kind!r}")
    return x + pos.astype(x.dtype)


class MlpBlock(nn.Module):
  """Transformer feed-forward: Dense(mlp_dim) -> GELU -> Dense(D), dropout."""
  mlp_dim: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """`[..., D]` -> `[..., D]`."""
    y = nn.gelu(nn.Dense(self.mlp_dim, name="fc1")(x))
    y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    y = nn.Dense(x.shape[-1], name="fc2")(y)
    return nn.Dropout(self.dropout_rate, deterministic=not train)(y)


class TransformerBlock(nn.Module):
  """Pre-LayerNorm Transformer layer: attention, then MLP, each residual.

  Self-attention by default; with `context`, cross-attention from `x` to the
  context tokens (the context gets its own LayerNorm, as in MulT).

  Attributes:
    num_heads: attention heads.
    mlp_dim: hidden width of the MLP.
    dropout_rate: dropout after attention and in the MLP.
  """
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None, *,
               context: Optional[Array] = None,
               context_mask: Optional[Array] = None, train: bool) -> Array:
    """One layer.

    Args:
      x: float `[B, T, D]`.
      mask: bool `[B, T]` valid tokens of `x` (keys of self-attention).
      context: float `[B, S, Dc]` or None (self-attention).
      context_mask: bool `[B, S]` valid context tokens.
      train: enables dropout.

    Returns:
      float `[B, T, D]`.
    """
    y = nn.LayerNorm(name="attention_norm")(x)
    if context is None:
      kv, kv_mask = y, mask
    else:
      kv, kv_mask = nn.LayerNorm(name="context_norm")(context), context_mask
    x = x + MultiHeadAttention(self.num_heads, dropout_rate=self.dropout_rate,
                               name="attention")(y, kv, kv_mask, train=train)
    y = nn.LayerNorm(name="mlp_norm")(x)
    return x + MlpBlock(self.mlp_dim, self.dropout_rate, name="mlp")(y, train=train)


class TransformerEncoder(nn.Module):
  """`num_layers` pre-LN `TransformerBlock`s and a final LayerNorm.

  Attributes:
    num_layers: number of layers (0 gives only the final LayerNorm).
    num_heads: attention heads.
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the layers.
  """
  num_layers: int
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None, *,
               train: bool) -> Array:
    """`[B, T, D]` tokens, bool `[B, T]` mask -> `[B, T, D]`."""
    for i in range(self.num_layers):
      x = TransformerBlock(self.num_heads, self.mlp_dim, self.dropout_rate,
                           name=f"layer_{i}")(x, mask, train=train)
    return nn.LayerNorm(name="final_norm")(x)
