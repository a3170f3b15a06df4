"""Single-stream fusion: one Transformer over all modalities' tokens."""

from typing import Mapping

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.fusion.attention_base import AttentionFusionBlock
from mmjax.models.fusion.base import FusionOutput, TokenTimes, modality_order
from mmjax.models.layers.attention import TransformerEncoder
from mmjax.models.registries import FUSION

Array = jnp.ndarray


@FUSION.register("self_attention")
class SelfAttentionFusion(AttentionFusionBlock):
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

  Attributes: those of `AttentionFusionBlock`.
  """

  def fuse(self, tokens: Mapping[str, Array], token_masks: Mapping[str, Array],
           present: Mapping[str, Array], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    init = nn.initializers.normal(0.02)
    x, valid = self.project_tokens(tokens, token_masks, present, token_times)
    order = modality_order(tokens)
    sequence = [x[m] + self.param(f"{m}_type_embedding", init, (self.dim,))
                for m in order]
    masks = [valid[m] for m in order]
    batch = sequence[0].shape[0]
    cls = self.param("cls", init, (1, 1, self.dim))
    sequence.insert(0, jnp.broadcast_to(cls, (batch, 1, self.dim)))
    masks.insert(0, jnp.ones((batch, 1), bool))
    x = TransformerEncoder(
        self.num_layers, self.num_heads, self.mlp_dim, self.dropout_rate,
        attention_implementation=self.attention_implementation,
        remat=self.remat, name="encoder")(
            jnp.concatenate(sequence, axis=1), jnp.concatenate(masks, axis=1),
            train=train)
    return FusionOutput(embedding=x[:, 0])
