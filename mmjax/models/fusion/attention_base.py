"""What the attention-based fusion blocks share: their attributes and the
per-modality token projection."""

from typing import Dict, Mapping, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.fusion.base import (FusionBlock, TokenTimes,
                                      modality_order)
from mmjax.models.layers.attention import (AddPositionalEmbedding,
                                           PositionalEmbedding)
from mmjax.models.layers.masking import valid_tokens

Array = jnp.ndarray


class ProjectTokens(nn.Module):
  """One modality's valid tokens, projected to a common width with positions.

  Invalid tokens (padding, or a missing modality) are zeroed by
  `valid_tokens` before the projection; the returned mask tells the caller
  which tokens may be attended to and pooled.

  Attributes:
    dim: output width D.
    positional_embedding: "learned", "sinusoidal" or "time"
      (`AddPositionalEmbedding`; "time" uses the tokens' `times`, and
      learned positions for a modality without times).
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


class AttentionFusionBlock(FusionBlock):
  """Base of the Transformer fusion blocks (`self_attention`,
  `cross_attention`, `bottleneck`, `time_aligned`): their shared attributes
  and `project_tokens`.

  Attributes:
    num_classes: unused (the classifier head is outside the block).
    dim: model width D.
    num_layers: Transformer (fusion) layers.
    num_heads: attention heads (must divide `dim`).
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the Transformer layers.
    positional_embedding: "learned", "sinusoidal" or "time" (time-aligned,
      from `token_times`; learned for a modality without times).
    attention_implementation: "auto", "xla" or "cudnn": the attention kernel
      of every layer (`mmjax.models.layers.attention_implementation`).
    remat: "none", "full" or "dots": rematerialisation of each Transformer
      layer (`mmjax.models.layers.remat`); parameters are unchanged.
  """
  dim: int = 128
  num_layers: int = 2
  num_heads: int = 4
  mlp_dim: int = 256
  dropout_rate: float = 0.0
  positional_embedding: PositionalEmbedding = "learned"
  attention_implementation: str = "auto"
  remat: str = "none"

  @classmethod
  def tiny(cls) -> Dict[str, object]:
    return {"dim": 16, "num_layers": 1, "num_heads": 2, "mlp_dim": 32}

  def project_tokens(self, tokens: Mapping[str, Array],
                     token_masks: Mapping[str, Array],
                     present: Mapping[str, Array], token_times: TokenTimes
                     ) -> Tuple[Dict[str, Array], Dict[str, Array]]:
    """Each modality through its own `ProjectTokens` (`<modality>_projection`).

    Returns:
      (`{m: float [batch, T_m, dim]}`, `{m: bool [batch, T_m]}` valid masks).
    """
    x, valid = {}, {}
    for m in modality_order(tokens):
      x[m], valid[m] = ProjectTokens(self.dim, self.positional_embedding,
                                     name=f"{m}_projection")(
                                         tokens[m], token_masks[m], present[m],
                                         (token_times or {}).get(m))
    return x, valid
