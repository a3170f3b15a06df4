"""The fusion-block interface shared by every block, and its masking helpers.

A fusion block is a Flax module registered in `registries.FUSION`:

    block = FUSION.get(name)(num_classes=C, **attributes)
    out = block(tokens, token_masks, present, train=...,
                token_times=None)                        # -> FusionOutput

- `tokens`: `{modality: float [batch, tokens_m, dim_m]}`; widths may differ,
  a block projects.
- `token_masks`: `{modality: bool [batch, tokens_m]}`, True for real tokens,
  False for padding.
- `present`: `{modality: float32 [batch]}`, 1.0 where the modality is present
  in an example, 0.0 where it is missing.
- `token_times` (optional): `{modality: float32 [tokens_m]}`, each token's
  time in seconds from the start of the clip window, for the modalities
  whose encoder has a time axis (`token_times` method of video and audio
  encoders); the same for every example of the batch. Attention blocks use
  it for time-aligned positional encodings (`positional_embedding="time"`),
  so tokens of two streams at the same moment carry the same code; other
  blocks ignore it.

A token is *valid* where its token mask is True and its modality is present.
Blocks read tokens only through `valid_tokens`, which replaces every invalid
token by zeros with `jnp.where` before any parameter touches it: a NaN or any
other content in padding or in a missing modality can then reach neither the
output nor the gradients (a product with a 0/1 mask would turn NaN * 0 into
NaN).

Blocks `sow` what analyses need into the "intermediates" collection: always
`fused_embedding` `[batch, dim]`, plus attention weights, gates or modality
weights where the block has them.
"""

from typing import Dict, Mapping, Optional, Tuple

import flax
import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray
# `{modality: float32 [tokens_m]}` seconds, or None (see the module docstring).
TokenTimes = Optional[Mapping[str, np.ndarray]]


@flax.struct.dataclass
class FusionOutput:
  """What a fusion block returns.

  Attributes:
    embedding: float32 `[batch, dim]`, the fused representation. The model's
      classifier head maps it to logits unless `logits` is set.
    logits: float32 `[batch, num_classes]` or None. Set by decision-level
      blocks, whose decision is the prediction (no head is applied).
    modality_logits: `{modality: float32 [batch, num_classes]}` or None: the
      per-modality predictions of decision-level blocks.
  """
  embedding: Array
  logits: Optional[Array] = None
  modality_logits: Optional[Dict[str, Array]] = None


def modality_order(tokens: Mapping[str, Array]) -> Tuple[str, ...]:
  """The fixed order in which blocks visit modalities (sorted names)."""
  return tuple(sorted(tokens))
