"""Masking helpers shared by encoders and fusion blocks.

A token is *valid* where its token mask is True and its modality is present
in the example. `valid_tokens` replaces every invalid token by zeros with
`jnp.where` before any parameter touches it: a NaN or any other content in
padding or in a missing modality can then reach neither the output nor the
gradients (a product with a 0/1 mask would turn NaN * 0 into NaN).
"""

from typing import Sequence, Tuple

import jax.numpy as jnp

Array = jnp.ndarray


def valid_mask(token_mask: Array, present: Array) -> Array:
  """bool `[batch, tokens]`: token is real and its modality is present.

  Args:
    token_mask: bool `[batch, tokens]`.
    present: float `[batch]` (1.0 present, 0.0 missing) or bool `[batch]`.
  """
  return jnp.logical_and(token_mask.astype(bool), present[:, None] > 0.5)


def valid_tokens(tokens: Array, token_mask: Array,
                 present: Array) -> Tuple[Array, Array]:
  """Zeroes invalid tokens with `jnp.where`; returns (tokens, valid).

  Args:
    tokens: float `[batch, tokens, dim]`.
    token_mask: bool `[batch, tokens]`.
    present: float32 `[batch]`.

  Returns:
    (float `[batch, tokens, dim]` with invalid tokens exactly 0,
     bool `[batch, tokens]` valid mask).
  """
  valid = valid_mask(token_mask, present)
  return jnp.where(valid[..., None], tokens, 0.0), valid


def masked_mean(tokens: Array, valid: Array) -> Array:
  """Mean over valid tokens: `[batch, tokens, dim]` -> `[batch, dim]`.

  An example without any valid token gets zeros (never a division by 0).
  """
  total = jnp.where(valid[..., None], tokens, 0.0).sum(axis=1)
  count = valid.sum(axis=1, keepdims=True).astype(tokens.dtype)
  return total / jnp.maximum(count, 1.0)


def present_mean(features: Sequence[Array], present: Sequence[Array]) -> Array:
  """Mean over the present modalities of per-modality `[batch, dim]` features.

  Args:
    features: one float `[batch, dim]` array per modality (same dim).
    present: one float32 `[batch]` presence array per modality.

  Returns:
    float `[batch, dim]`; zeros for an example with no modality present.
  """
  stacked = jnp.stack(features, axis=1)  # [batch, modalities, dim]
  is_present = jnp.stack(present, axis=1) > 0.5  # [batch, modalities]
  return masked_mean(stacked, is_present)
