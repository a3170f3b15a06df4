"""Gated Multimodal Unit fusion."""

from typing import Mapping, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.fusion.base import (FusionBlock, FusionOutput, Params,
                                      TokenTimes, modality_order)
from mmjax.models.fusion.common import (Trunk, pool_modalities,
                                        present_softmax, project)
from mmjax.models.registries import FUSION


@FUSION.register("gated")
class GatedFusion(FusionBlock):
  """Gated Multimodal Unit (GMU) over masked-mean pooled modality features.

  Arevalo, Solorio, Montes-y-Gomez and Gonzalez 2017, "Gated Multimodal
  Units for Information Fusion". With x_m the pooled features:

      h_m = tanh(W_m x_m)
      z   = softmax over present modalities of W_z [x_1; ...; x_M]
            (per dimension; a missing x_m is zeros in the concatenation)
      h   = sum_m z_m * h_m

  For two modalities the softmax of two gate logits is the paper's
  sigmoid gate z / 1 - z. A missing modality gets gate 0 and is zeros in the
  gate's input, so the result is that of the block without it (its rows and
  columns of the gate drop out). Like the paper's equations, the layers have
  no bias. Sows `gates` `[batch, modalities, dim]`.

  With `input_norm` (default), each x_m is first LayerNorm-ed (Ba et al.
  2016), a departure from the paper, which fuses fixed features: trained
  end to end, a growing encoder output saturates the tanh and the bias-free
  gate (experiments/robustness/RESULTS.md).

  Shapes: tokens `{m: [batch, tokens_m, dim_m]}` -> embedding
  `[batch, dim]` (`[batch, hidden_dims[-1]]` with hidden layers).

  Attributes:
    num_classes: number of classes (used by the model's head).
    dim: width of the h_m and of the fused h.
    hidden_dims: trunk hidden widths after the GMU.
    dropout_rate: trunk dropout.
    input_norm: LayerNorm each pooled modality feature before the GMU.
  """
  dim: int = 128
  hidden_dims: Tuple[int, ...] = ()
  dropout_rate: float = 0.0
  input_norm: bool = True

  def fuse(self, tokens: Mapping[str, jnp.ndarray],
           token_masks: Mapping[str, jnp.ndarray],
           present: Mapping[str, jnp.ndarray], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    order, pooled, is_present = pool_modalities(tokens, token_masks, present)
    if self.input_norm:
      # LayerNorm of a missing modality's zeros would be the norm's bias.
      pooled = [jnp.where(is_present[:, i, None],
                          nn.LayerNorm(name=f"{m}_input_norm")(x), 0.0)
                for i, (m, x) in enumerate(zip(order, pooled))]
    hidden = jnp.tanh(jnp.stack(
        project(order, pooled, self.dim, use_bias=False), axis=1))
    gate_logits = nn.Dense(len(order) * self.dim, use_bias=False,
                           name="gate")(jnp.concatenate(pooled, axis=-1))
    gates = present_softmax(gate_logits.reshape(hidden.shape),
                            is_present[..., None])
    self.sow("intermediates", "gates", gates)
    embedding = Trunk(self.hidden_dims, self.dropout_rate)(
        (gates * hidden).sum(axis=1), train=train)
    return FusionOutput(embedding=embedding)

  def params_without_modality(self, params: Params, dims: Mapping[str, int],
                              modality: str) -> Optional[Params]:
    """Drops the modality's input rows and output columns of the gate."""
    order = modality_order(dims)
    i = order.index(modality)
    start = sum(dims[m] for m in order[:i])
    kernel = np.asarray(params["gate"]["kernel"])
    rows = np.r_[0:start, start + dims[modality]:kernel.shape[0]]
    columns = np.r_[0:i * self.dim, (i + 1) * self.dim:kernel.shape[1]]
    return {**params, "gate": {"kernel": kernel[rows][:, columns]}}
