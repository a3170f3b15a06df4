"""Project-and-pool fusion: modality projections summed, averaged or maxed."""

from typing import Mapping, Tuple

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models.fusion.base import FusionBlock, FusionOutput, TokenTimes
from mmjax.models.layers.masking import masked_mean
from mmjax.models.fusion.common import (Trunk, pool_modalities, present_max,
                                        present_sum, project)
from mmjax.models.registries import FUSION


class _ProjectAndPool(FusionBlock):
  """Base of `sum`, `mean` and `max` fusion; subclasses define `reduce`.

  Each modality's masked-mean pooled features get their own `Dense(dim)`;
  the projections are reduced over the modalities present in each example
  (a missing modality is left out, not counted as zeros) and passed through
  the trunk. An example with no modality present gets a zero fused vector.

  Shapes: tokens `{m: [batch, tokens_m, dim_m]}` -> embedding
  `[batch, dim]` (`[batch, hidden_dims[-1]]` with hidden layers).

  Attributes:
    num_classes: number of classes (used by the model's head).
    dim: projection width.
    hidden_dims: trunk hidden widths after the reduction.
    dropout_rate: trunk dropout.
  """
  dim: int = 128
  hidden_dims: Tuple[int, ...] = ()
  dropout_rate: float = 0.0

  def reduce(self, stacked: jnp.ndarray,
             is_present: jnp.ndarray) -> jnp.ndarray:
    """`[batch, M, dim]`, bool `[batch, M]` -> `[batch, dim]`."""
    raise NotImplementedError

  def fuse(self, tokens: Mapping[str, jnp.ndarray],
           token_masks: Mapping[str, jnp.ndarray],
           present: Mapping[str, jnp.ndarray], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    order, pooled, is_present = pool_modalities(tokens, token_masks, present)
    stacked = jnp.stack(project(order, pooled, self.dim), axis=1)
    embedding = Trunk(self.hidden_dims, self.dropout_rate)(
        self.reduce(stacked, is_present), train=train)
    return FusionOutput(embedding=embedding)


@FUSION.register("sum")
class SumFusion(_ProjectAndPool):
  """Sum of the present modalities' projections (see `_ProjectAndPool`).

  Additive fusion as in Baltrusaitis, Ahuja and Morency 2019, "Multimodal
  Machine Learning: A Survey and Taxonomy".
  """

  def reduce(self, stacked, is_present):
    return present_sum(stacked, is_present)


@FUSION.register("mean")
class MeanFusion(_ProjectAndPool):
  """Mean of the present modalities' projections (see `_ProjectAndPool`).

  Unlike `sum`, its scale does not depend on how many modalities are present.
  """

  def reduce(self, stacked, is_present):
    return masked_mean(stacked, is_present)


@FUSION.register("max")
class MaxFusion(_ProjectAndPool):
  """Element-wise max of the present modalities' projections.

  See `_ProjectAndPool`; max pooling over modalities is used e.g. in
  multi-view CNNs (Su et al. 2015, "Multi-view Convolutional Neural Networks
  for 3D Shape Recognition").
  """

  def reduce(self, stacked, is_present):
    return present_max(stacked, is_present)
