"""Cross-modal attention fusion: the Multimodal Transformer (MulT)."""

from typing import Mapping, Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.fusion.attention_base import AttentionFusionBlock
from mmjax.models.fusion.base import (FusionOutput, Params, TokenTimes,
                                      modality_order)
from mmjax.models.layers.attention import (TransformerEncoder,
                                           transformer_block)
from mmjax.models.layers.masking import masked_mean, present_mean
from mmjax.models.registries import FUSION

Array = jnp.ndarray


class CrossModalTransformer(nn.Module):
  """`num_layers` pre-LN layers attending from target tokens to a source.

  As in MulT, every layer attends to the same (low-level) source tokens.

  Attributes:
    num_layers: layers.
    num_heads: attention heads.
    mlp_dim: MLP hidden width.
    dropout_rate: dropout inside the layers.
    attention_implementation: "auto", "xla" or "cudnn" (`attend`).
    remat: "none", "full" or "dots": rematerialisation of each layer
      (`mmjax.models.layers.remat`).
  """
  num_layers: int
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  attention_implementation: str = "auto"
  remat: str = "none"

  @nn.compact
  def __call__(self, x: Array, source: Array, source_mask: Array, *,
               train: bool) -> Array:
    """Target `[B, T, D]`, source `[B, S, D]`, bool `[B, S]` -> `[B, T, D]`."""
    block = transformer_block(self.remat)
    for i in range(self.num_layers):
      x = block(self.num_heads, self.mlp_dim, self.dropout_rate,
                attention_implementation=self.attention_implementation,
                name=f"layer_{i}")(x, None, source, source_mask, train)
    return x


@FUSION.register("cross_attention")
class CrossAttentionFusion(AttentionFusionBlock):
  """Pairwise cross-modal Transformers, then a self-attention per target.

  For every target modality t and every other (source) modality s, a stack of
  `num_layers` cross-attention layers `t_from_s` takes t's tokens as queries
  and s's valid tokens as keys/values. The updates the stacks make to t's
  tokens are concatenated on the feature axis, projected to `dim` (no bias)
  and added to t's tokens; this is MulT's concatenation of the cross-modal
  outputs, written residually so that a source with no valid token (e.g. a
  missing modality) contributes exactly nothing. `num_self_layers`
  self-attention layers (MulT's per-target Transformer) follow, then a mean
  over t's valid tokens. The embedding is the mean over the present targets.
  With a single modality there is no source and the target only goes through
  the self-attention layers.

  Reference: Tsai et al. 2019, "Multimodal Transformer for Unaligned
  Multimodal Language Sequences" (MulT). Departures from it:
  - the source tokens get a LayerNorm of their own (`context_norm`), where
    MulT normalises queries and keys/values with the same LayerNorm;
  - no causal ("future") mask, which MulT applies by default (`attn_mask`):
    the classifiers here read whole clips;
  - the cross-modal outputs enter residually through a `dim`-wide
    projection, where MulT concatenates them to a `2 * dim` sequence;
  - positions are `positional_embedding` (learned by default), where MulT
    adds scaled sinusoids after a 1-D convolution.

  Shapes: tokens `{m: [batch, T_m, dim_m]}` -> per target `[batch, T_t, dim]`
  -> embedding `[batch, dim]`. Sown: `fused_embedding`, `{t}_embedding`
  `[batch, dim]` per target, and in `t_from_s/layer_i/attention` the
  attention weights `[batch, heads, T_t, T_s]`.

  Attributes (beside `AttentionFusionBlock`'s):
    num_layers: cross-attention layers per (target, source) pair.
    num_self_layers: self-attention layers per target after the fusion.
  """
  num_self_layers: int = 1

  def fuse(self, tokens: Mapping[str, Array], token_masks: Mapping[str, Array],
           present: Mapping[str, Array], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    order = modality_order(tokens)
    x, valid = self.project_tokens(tokens, token_masks, present, token_times)
    pooled = []
    for t in order:
      updates = []
      for s in order:
        if s == t:
          continue
        y = CrossModalTransformer(
            self.num_layers, self.num_heads, self.mlp_dim, self.dropout_rate,
            self.attention_implementation, self.remat,
            name=f"{t}_from_{s}")(x[t], x[s], valid[s], train=train)
        has_source = valid[s].any(axis=1)[:, None, None]
        updates.append(jnp.where(has_source, y - x[t], 0.0))
      h = x[t]
      if updates:
        h = h + nn.Dense(self.dim, use_bias=False, name=f"{t}_fuse")(
            jnp.concatenate(updates, axis=-1))
      h = TransformerEncoder(
          self.num_self_layers, self.num_heads, self.mlp_dim,
          self.dropout_rate,
          attention_implementation=self.attention_implementation,
          remat=self.remat, name=f"{t}_self")(h, valid[t], train=train)
      pooled.append(masked_mean(h, valid[t]))
      self.sow("intermediates", f"{t}_embedding", pooled[-1])
    return FusionOutput(embedding=present_mean(pooled,
                                               [present[m] for m in order]))

  def params_without_modality(self, params: Params, dims: Mapping[str, int],
                              modality: str) -> Optional[Params]:
    """A missing source's update is zeros in `{t}_fuse`'s input: removing it
    removes its `dim` rows of the kernel (and the whole Dense when no source
    is left)."""
    out = dict(params)
    order = modality_order(dims)
    for t in order:
      if t == modality:
        continue
      sources = [s for s in order if s != t]
      name = f"{t}_fuse"
      if len(sources) == 1:
        out.pop(name, None)
        continue
      kernel = np.asarray(params[name]["kernel"])
      i = sources.index(modality)
      keep = np.r_[0:i * self.dim, (i + 1) * self.dim:kernel.shape[0]]
      out[name] = {"kernel": kernel[keep]}
    return out
