"""Attention-bottleneck fusion (MBT)."""

from typing import Mapping

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.fusion.attention_base import AttentionFusionBlock
from mmjax.models.fusion.base import FusionOutput, TokenTimes, modality_order
from mmjax.models.layers.attention import transformer_block
from mmjax.models.layers.masking import masked_mean, present_mean
from mmjax.models.registries import FUSION

Array = jnp.ndarray


@FUSION.register("bottleneck")
class BottleneckFusion(AttentionFusionBlock):
  """Modalities exchange information only through a few bottleneck tokens.

  Each modality is projected to `dim` with its own positional embedding.
  `num_bottleneck_tokens` learned tokens are shared by all modalities. Each
  fusion layer runs, per modality, a Transformer layer (own parameters per
  modality and layer) over [modality tokens, bottleneck tokens], the
  modality's padding masked as keys; the new bottleneck is the mean of the
  modalities' updated bottleneck tokens over the modalities present in each
  example (an example with none present keeps the previous bottleneck). A
  final per-modality LayerNorm and a mean over valid tokens give one feature
  per modality; the embedding is their mean over the present modalities.

  Reference: Nagrani et al. 2021, "Attention Bottlenecks for Multimodal
  Fusion" (MBT). `num_layers` counts the fusion layers only: MBT's fusion
  "from layer L_f on" of an L-layer model is the token encoders (e.g. `vit`,
  `spectrogram_transformer`) with `num_layers = L_f` unimodal layers and this
  block with `num_layers = L - L_f`. A modality reads in layer i the
  bottleneck the others wrote in layer i - 1, so information crosses
  modalities only from the second fusion layer on; with `num_layers < 2` the
  modalities do not interact (late fusion of the pooled features).
  Departure from MBT (and scenic's implementation): MBT classifies each
  modality's CLS token with a shared head and averages the logits; here
  each modality's valid tokens are mean-pooled (no CLS token) and the
  pooled features are averaged over the present modalities before the
  model's single head.

  Shapes: tokens `{m: [batch, T_m, dim_m]}`, bottleneck
  `[batch, num_bottleneck_tokens, dim]` -> embedding `[batch, dim]`. Sown:
  `fused_embedding` and `{m}_embedding` `[batch, dim]` per modality.

  Attributes (beside `AttentionFusionBlock`'s):
    num_layers: fusion layers.
    num_bottleneck_tokens: shared bottleneck tokens.
  """
  num_bottleneck_tokens: int = 4

  @classmethod
  def tiny(cls):
    # Two layers: with one, the modalities do not interact.
    return {**super().tiny(), "num_layers": 2, "num_bottleneck_tokens": 2}

  def fuse(self, tokens: Mapping[str, Array], token_masks: Mapping[str, Array],
           present: Mapping[str, Array], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    order = modality_order(tokens)
    x, valid = self.project_tokens(tokens, token_masks, present, token_times)
    batch, n = x[order[0]].shape[0], self.num_bottleneck_tokens
    bottleneck = self.param("bottleneck", nn.initializers.normal(0.02),
                            (1, n, self.dim))
    z = jnp.broadcast_to(bottleneck, (batch, n, self.dim))
    always = jnp.ones((batch, n), bool)
    presence = [present[m] for m in order]
    any_present = (jnp.stack(presence, axis=1) > 0.5).any(axis=1)
    block = transformer_block(self.remat)
    for i in range(self.num_layers):
      updated = []
      for m in order:
        y = block(self.num_heads, self.mlp_dim, self.dropout_rate,
                  attention_implementation=self.attention_implementation,
                  name=f"{m}_layer_{i}")(
                      jnp.concatenate([x[m], z], axis=1),
                      jnp.concatenate([valid[m], always], axis=1), None, None,
                      train)
        length = x[m].shape[1]
        x[m] = y[:, :length]
        updated.append(y[:, length:].reshape(batch, n * self.dim))
      mean = present_mean(updated, presence).reshape(batch, n, self.dim)
      z = jnp.where(any_present[:, None, None], mean, z)
    pooled = []
    for m in order:
      h = nn.LayerNorm(name=f"{m}_final_norm")(x[m])
      pooled.append(masked_mean(h, valid[m]))
      self.sow("intermediates", f"{m}_embedding", pooled[-1])
    return FusionOutput(embedding=present_mean(pooled, presence))
