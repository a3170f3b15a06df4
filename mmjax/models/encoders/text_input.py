"""The text batch every text encoder takes (`text.py`, `recurrent.py`),
checked in one place."""

from typing import Any, Mapping, Optional, Tuple

import jax.numpy as jnp


def check_text(inputs: Any, max_length: Optional[int], type_vocab_size: int
               ) -> Tuple[jnp.ndarray, jnp.ndarray, Optional[jnp.ndarray]]:
  """Checks a text batch and returns its arrays.

  Args:
    inputs: `{"token_ids": int [batch, length], "token_mask": bool or int
      [batch, length] (1 = real token; absent: all real), optional
      "token_type_ids": int [batch, length]}`.
    max_length: the longest length accepted; None: any length.
    type_vocab_size: token types the encoder embeds; 0: `token_type_ids`
      are refused.

  Returns:
    (token_ids `[batch, length]`, bool mask `[batch, length]`,
    token_type_ids `[batch, length]` or None).

  Raises:
    ValueError: for inputs that are not a mapping with "token_ids",
      token_ids that are not rank 2 or longer than `max_length`, a mask or
      token types of another shape, or token types with `type_vocab_size`
      0.
  """
  if not isinstance(inputs, Mapping) or "token_ids" not in inputs:
    got = (sorted(inputs) if isinstance(inputs, Mapping)
           else type(inputs).__name__)
    raise ValueError(f"text encoder expects a mapping with 'token_ids' "
                     f"[batch, length] and 'token_mask' [batch, length], got "
                     f"{got}")
  ids = jnp.asarray(inputs["token_ids"])
  if ids.ndim != 2:
    raise ValueError(f"text encoder expects token_ids [batch, length], got "
                     f"shape {ids.shape}")
  if max_length is not None and ids.shape[1] > max_length:
    raise ValueError(f"text encoder: token_ids have length {ids.shape[1]}, "
                     f"more than max_length={max_length} positions")
  mask = inputs.get("token_mask")
  mask = (jnp.ones(ids.shape, bool) if mask is None
          else jnp.asarray(mask).astype(bool))
  if mask.shape != ids.shape:
    raise ValueError(f"text encoder: token_mask has shape {mask.shape}, "
                     f"token_ids {ids.shape}")
  types = inputs.get("token_type_ids")
  if types is not None:
    if not type_vocab_size:
      raise ValueError("text encoder: token_type_ids given, but "
                       "type_vocab_size=0 (no token-type embeddings)")
    types = jnp.asarray(types)
    if types.shape != ids.shape:
      raise ValueError(f"text encoder: token_type_ids have shape "
                       f"{types.shape}, token_ids {ids.shape}")
  return ids, mask, types
