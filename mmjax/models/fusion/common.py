"""Helpers shared by the non-attention fusion blocks.

`Trunk` is the small MLP after fusion; `pool_modalities`, `project` and
`factors` turn token inputs into one masked vector per modality;
`present_softmax`, `present_sum` and `present_max` combine per-modality
values over each example's present modalities only.
"""

from typing import List, Mapping, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmjax.models.fusion.base import modality_order
from mmjax.models.layers.masking import masked_mean, valid_tokens

Array = jnp.ndarray


class Trunk(nn.Module):
  """Dropout, then Dense -> GELU -> dropout per hidden width.

  Returns the last hidden layer (the input, after dropout, when
  `hidden_dims` is empty); the model's head or a block's classifier follows.

  Attributes:
    hidden_dims: widths of the hidden layers.
    dropout_rate: dropout on the input and after each hidden activation
      (training only).
  """
  hidden_dims: Tuple[int, ...] = ()
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """`[..., in_dim]` -> `[..., hidden_dims[-1]]` (or `[..., in_dim]`)."""
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    for width in self.hidden_dims:
      x = nn.gelu(nn.Dense(width)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return x


def pool_modalities(
    tokens: Mapping[str, Array], token_masks: Mapping[str, Array],
    present: Mapping[str, Array]
) -> Tuple[Tuple[str, ...], List[Array], Array]:
  """Masked-mean pools each modality, in `modality_order`.

  Args:
    tokens: `{modality: float [batch, tokens_m, dim_m]}`.
    token_masks: `{modality: bool [batch, tokens_m]}`.
    present: `{modality: float32 [batch]}`.

  Returns:
    (modality order; one float `[batch, dim_m]` per modality, exactly 0 for
    an example where the modality is missing; bool `[batch, modalities]`
    presence).
  """
  order = modality_order(tokens)
  pooled = [masked_mean(*valid_tokens(tokens[m], token_masks[m], present[m]))
            for m in order]
  is_present = jnp.stack([present[m] > 0.5 for m in order], axis=1)
  return order, pooled, is_present


def project(order: Sequence[str], pooled: Sequence[Array], dim: int,
            name: str = "projection", use_bias: bool = True) -> List[Array]:
  """One `Dense(dim)` per modality, named `<modality>_<name>`.

  Call inside a compact method: the layers become the caller's submodules.
  """
  return [nn.Dense(dim, use_bias=use_bias, name=f"{m}_{name}")(x)
          for m, x in zip(order, pooled)]


def factors(order: Sequence[str], pooled: Sequence[Array], is_present: Array,
            dim: int) -> List[Array]:
  """Tensor-fusion factors: `[Dense(dim)(x_m) or 0 where missing, 1]`.

  The appended constant 1 keeps lower-order terms in the outer product; a
  missing modality becomes `[0, ..., 0, 1]`, so only the other modalities'
  terms remain. Call inside a compact method (layers `<modality>_factor`).

  Returns:
    One float `[batch, dim + 1]` per modality.
  """
  out = []
  for i, z in enumerate(project(order, pooled, dim, name="factor")):
    z = jnp.where(is_present[:, i, None], z, 0.0)
    out.append(jnp.concatenate([z, jnp.ones_like(z[:, :1])], axis=-1))
  return out


def present_softmax(logits: Array, is_present: Array, axis: int = 1) -> Array:
  """Softmax over the present entries along `axis`; 0 elsewhere.

  Args:
    logits: float, e.g. `[batch, modalities]` or `[batch, modalities, dim]`.
    is_present: bool, broadcastable to `logits`.
    axis: the modality axis.

  Returns:
    float like `logits`: sums to 1 along `axis` over present entries, is 0
    for missing ones, and is all 0 (finite) where none is present.
  """
  is_present = jnp.broadcast_to(is_present, logits.shape)
  top = jnp.max(jnp.where(is_present, logits, -jnp.inf), axis, keepdims=True)
  top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
  # Missing entries are shifted to 0 before exp so that no inf is formed.
  shifted = jnp.where(is_present, logits - top, 0.0)
  e = jnp.where(is_present, jnp.exp(shifted), 0.0)
  # The largest present entry contributes exp(0) = 1, so the sum is >= 1
  # whenever any entry is present and the clamp only acts when none is.
  return e / jnp.maximum(e.sum(axis, keepdims=True), 1.0)


def present_sum(stacked: Array, is_present: Array) -> Array:
  """Sum over present modalities.

  `[batch, M, dim]`, bool `[batch, M]` -> `[batch, dim]`.
  """
  return jnp.where(is_present[..., None], stacked, 0.0).sum(axis=1)


def present_max(stacked: Array, is_present: Array) -> Array:
  """Element-wise max over present modalities; 0 where none is present.

  `[batch, M, dim]`, bool `[batch, M]` -> `[batch, dim]`.
  """
  top = jnp.where(is_present[..., None], stacked, -jnp.inf).max(axis=1)
  return jnp.where(is_present.any(axis=1, keepdims=True), top, 0.0)
