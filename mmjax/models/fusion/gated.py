"""Gated Multimodal Unit fusion."""

from typing import Mapping, Tuple

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.fusion.base import FusionOutput, TokenTimes
from mmjax.models.fusion.common import (Trunk, pool_modalities,
                                        present_softmax, project)
from mmjax.models.registries import FUSION


@FUSION.register("gated")
class GatedFusion(nn.Module):
  """Gated Multimodal Unit (GMU) over masked-mean pooled modality features.

  Arevalo, Solorio, Montes-y-Gomez and Gonzalez 2017, "Gated Multimodal
  Units for Information Fusion". With x_m the pooled features:

      h_m = tanh(W_m x_m)
      z   = softmax over present modalities of W_z [x_1; ...; x_M]
            (per dimension; a missing x_m is zeros in the concatenation)
      h   = sum_m z_m * h_m

  For two modalities the softmax of two gate logits is the paper's
  sigmoid gate z / 1 - z. Missing modalities get gate 0. Like the paper's
  equations, the layers have no bias. Sows `gates` `[batch, modalities, dim]`.

  With `input_norm` (default), each x_m is first LayerNorm-ed (Ba et al.
  2016). The paper fuses fixed features; trained end to end, an encoder
  whose output grows saturates both the tanh and the bias-free gate, which
  then pass no gradient: with modality dropout and auxiliary heads on
  av_digits the audio embeddings reached |x| ~ 150, the fused embedding was
  all +-1 and training stalled at 0.63 accuracy
  (experiments/robustness/RESULTS.md).

  Shapes: tokens `{m: [batch, tokens_m, dim_m]}` -> embedding
  `[batch, dim]` (`[batch, hidden_dims[-1]]` with hidden layers).

  Attributes:
    num_classes: number of classes (used by the model's head).
    dim: width of the h_m and of the fused h.
    hidden_dims: trunk hidden widths after the GMU.
    dropout_rate: trunk dropout.
    input_norm: LayerNorm each pooled modality feature before the GMU.
  """
  num_classes: int
  dim: int = 128
  hidden_dims: Tuple[int, ...] = ()
  dropout_rate: float = 0.0
  input_norm: bool = True

  @nn.compact
  def __call__(self, tokens: Mapping[str, jnp.ndarray],
               token_masks: Mapping[str, jnp.ndarray],
               present: Mapping[str, jnp.ndarray], *,
               train: bool,
               token_times: TokenTimes = None) -> FusionOutput:
    """Fuses modalities; see `mmjax.models.fusion.base` for the arguments."""
    order, pooled, is_present = pool_modalities(tokens, token_masks, present)
    if self.input_norm:
      # A missing modality becomes the norm's bias; its gate is still 0.
      pooled = [nn.LayerNorm(name=f"{m}_input_norm")(x)
                for m, x in zip(order, pooled)]
    hidden = jnp.tanh(jnp.stack(
        project(order, pooled, self.dim, use_bias=False), axis=1))
    gate_logits = nn.Dense(len(order) * self.dim, use_bias=False,
                           name="gate")(jnp.concatenate(pooled, axis=-1))
    gates = present_softmax(gate_logits.reshape(hidden.shape),
                            is_present[..., None])
    self.sow("intermediates", "gates", gates)
    embedding = Trunk(self.hidden_dims, self.dropout_rate)(
        (gates * hidden).sum(axis=1), train=train)
    self.sow("intermediates", "fused_embedding", embedding)
    return FusionOutput(embedding=embedding)
