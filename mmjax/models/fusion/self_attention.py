"""Single-stream fusion: one Transformer over all modalities' tokens."""

from typing import Mapping

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.fusion.base import FusionOutput, TokenTimes, modality_order
from mmjax.models.fusion.projection import ProjectTokens
from mmjax.models.layers.attention import TransformerEncoder
from mmjax.models.registries import FUSION

Array = jnp.ndarray


@FUSION.register("self_attention")
class SelfAttentionFusion(nn.Module):
  """Self-attention over the concatenated token sequences, read at a CLS token.

  Each modality is projected to `dim` by its own Dense, gets its own
  positional embedding and a learned modality-type embedding; a learned CLS
  token is prepended to the concatenation (modalities in `modality_order`)
  and a Transformer encoder runs over the whole sequence. Padding and missing
  modalities are masked as keys, so no token attends to them. The embedding
  is the CLS output; with nothing present the CLS attends only to itself.

  This is the single-stream fusion of VisualBERT (Li et al. 2019) and UNITER
  (Chen et al. 2020), and the "vanilla self-attention" fusion baseline of
  Nagrani et al. 2021, "Attention Bottlenecks for Multimodal Fusion".

  Shapes: tokens `{m: [batch, T_m, dim_m]}` -> sequence
  `[batch, 1 + sum_m T_m, dim]` -> embedding `[batch, dim]`.

  Attributes:
    num_classes: unused (the classifier head is outside the block).
    dim: model width.
    num_layers: Transformer layers.
    num_heads: attention heads (must divide `dim`).
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the Transformer layers.
    positional_embedding: "learned", "sinusoidal" or "time" (time-
      aligned, from `token_times`), per modality.
  """
  num_classes: int
  dim: int = 128
  num_layers: int = 2
  num_heads: int = 4
  mlp_dim: int = 256
  dropout_rate: float = 0.0
  positional_embedding: str = "learned"

  @nn.compact
  def __call__(self, tokens: Mapping[str, Array],
               token_masks: Mapping[str, Array],
               present: Mapping[str, Array], *, train: bool,
               token_times: TokenTimes = None) -> FusionOutput:
    """Fuses; see `mmjax.models.fusion.base` for the arguments."""
    init = nn.initializers.normal(0.02)
    sequence, masks = [], []
    for m in modality_order(tokens):
      x, valid = ProjectTokens(self.dim, self.positional_embedding,
                               name=f"{m}_projection")(
                                   tokens[m], token_masks[m], present[m],
                                   (token_times or {}).get(m))
      x = x + self.param(f"{m}_type_embedding", init, (self.dim,))
      sequence.append(x)
      masks.append(valid)
    batch = sequence[0].shape[0]
    cls = self.param("cls", init, (1, 1, self.dim))
    sequence.insert(0, jnp.broadcast_to(cls, (batch, 1, self.dim)))
    masks.insert(0, jnp.ones((batch, 1), bool))
    x = TransformerEncoder(self.num_layers, self.num_heads, self.mlp_dim,
                           self.dropout_rate, name="encoder")(
                               jnp.concatenate(sequence, axis=1),
                               jnp.concatenate(masks, axis=1), train=train)
    embedding = x[:, 0]
    self.sow("intermediates", "fused_embedding", embedding)
    return FusionOutput(embedding=embedding)
