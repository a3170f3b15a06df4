"""Tensor fusion (TFN) and its low-rank factorisation (LMF)."""

from typing import Mapping, Optional, Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.fusion.base import (FusionBlock, FusionOutput, Params,
                                      TokenTimes, modality_order)
from mmjax.models.fusion.common import Trunk, factors, pool_modalities
from mmjax.models.registries import FUSION


def flat_outer_product(vectors: Sequence[jnp.ndarray]) -> jnp.ndarray:
  """Per-example outer product, flattened.

  `[batch, d_1]`, ..., `[batch, d_M]` -> `[batch, d_1 * ... * d_M]`.

  The first vector's index varies slowest (C order), as in
  `np.einsum("bi,bj->bij", a, b).reshape(batch, -1)`.
  """
  out = vectors[0]
  for v in vectors[1:]:
    out = (out[:, :, None] * v[:, None, :]).reshape(out.shape[0], -1)
  return out


@FUSION.register("tensor_fusion")
class TensorFusion(FusionBlock):
  """Tensor Fusion Network: the outer product of the modalities' factors.

  Zadeh, Chen, Poria, Cambria and Morency 2017, "Tensor Fusion Network for
  Multimodal Sentiment Analysis". Each modality's masked-mean pooled features
  are projected to z_m = Dense(factor_dim) (zeros where the modality is
  missing) and a constant 1 is appended; the outer product of the [z_m, 1]
  in modality order holds every unimodal, bimodal, ... term. A missing
  modality is [0, ..., 0, 1], so only the other modalities' terms remain:
  with hidden layers, the result is that of the block without it (the
  first Dense keeps the rows of the terms without it). The flattened product
  goes through the trunk. Departure from TFN: the constant 1 is appended,
  where the paper prepends it; only the order of the product's entries
  differs.

  Shapes: tokens `{m: [batch, tokens_m, dim_m]}` -> product
  `[batch, (factor_dim + 1) ** M]` -> embedding `[batch, hidden_dims[-1]]`
  (the product itself if `hidden_dims` is empty).

  Attributes:
    num_classes: number of classes (used by the model's head).
    factor_dim: width of each z_m (the product grows as its M-th power).
    hidden_dims: trunk hidden widths.
    dropout_rate: trunk dropout.
  """
  factor_dim: int = 16
  hidden_dims: Tuple[int, ...] = (128,)
  dropout_rate: float = 0.0

  def fuse(self, tokens: Mapping[str, jnp.ndarray],
           token_masks: Mapping[str, jnp.ndarray],
           present: Mapping[str, jnp.ndarray], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    order, pooled, is_present = pool_modalities(tokens, token_masks, present)
    product = flat_outer_product(
        factors(order, pooled, is_present, self.factor_dim))
    embedding = Trunk(self.hidden_dims, self.dropout_rate)(product, train=train)
    return FusionOutput(embedding=embedding)


  def params_without_modality(self, params: Params, dims: Mapping[str, int],
                              modality: str) -> Optional[Params]:
    """Keeps the first Dense's rows where the modality's factor is its
    constant 1 (None without hidden layers: the product is the embedding)."""
    if not self.hidden_dims:
      return None
    order = modality_order(dims)
    kernel = np.asarray(params["Trunk_0"]["Dense_0"]["kernel"])
    size = self.factor_dim + 1
    kernel = kernel.reshape((size,) * len(order) + kernel.shape[-1:])
    kernel = np.take(kernel, size - 1, axis=order.index(modality))
    trunk = dict(params["Trunk_0"])
    trunk["Dense_0"] = {**trunk["Dense_0"],
                        "kernel": kernel.reshape(-1, kernel.shape[-1])}
    return {**params, "Trunk_0": trunk}


@FUSION.register("low_rank_tensor_fusion")
class LowRankTensorFusion(FusionBlock):
  """Low-rank Multimodal Fusion: TFN's weight tensor in factored form.

  Liu, Shen, Lakshminarasimhan, Liang, Zadeh and Morency 2018, "Efficient
  Low-rank Multimodal Fusion with Modality-Specific Factors". With the
  factors [z_m, 1] of `tensor_fusion` and modality-specific weights W_m
  `[rank, factor_dim + 1, dim]`:

      fused = sum_r prod_m ([z_m, 1] W_m^r) + bias

  which equals a linear layer on TFN's full product whose weight tensor is
  `sum_r W_1^r (x) ... (x) W_M^r`, without ever forming the product. The
  fused vector goes through the trunk. A missing modality's factor is
  [0, ..., 0, 1], so it multiplies the others' terms by its constant row
  W_m^r[-1]: the result is that of the block without it whose remaining
  first modality's weights absorb that row.

  Shapes: tokens `{m: [batch, tokens_m, dim_m]}` -> embedding `[batch, dim]`
  (`[batch, hidden_dims[-1]]` with hidden layers).

  Attributes:
    num_classes: number of classes (used by the model's head).
    rank: number of rank-one terms.
    factor_dim: width of each z_m.
    dim: width of the fused vector.
    hidden_dims: trunk hidden widths.
    dropout_rate: trunk dropout.
  """
  rank: int = 4
  factor_dim: int = 16
  dim: int = 128
  hidden_dims: Tuple[int, ...] = ()
  dropout_rate: float = 0.0

  def fuse(self, tokens: Mapping[str, jnp.ndarray],
           token_masks: Mapping[str, jnp.ndarray],
           present: Mapping[str, jnp.ndarray], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    order, pooled, is_present = pool_modalities(tokens, token_masks, present)
    init = nn.initializers.xavier_normal(in_axis=1, out_axis=2, batch_axis=0)
    product = 1.0
    for m, z in zip(order, factors(order, pooled, is_present,
                                   self.factor_dim)):
      weight = self.param(f"{m}_factor_weight", init,
                          (self.rank, self.factor_dim + 1, self.dim))
      product = product * jnp.einsum("bi,rid->brd", z, weight)
    bias = self.param("bias", nn.initializers.zeros, (self.dim,))
    fused = product.sum(axis=1) + bias
    embedding = Trunk(self.hidden_dims, self.dropout_rate)(fused, train=train)
    return FusionOutput(embedding=embedding)

  def params_without_modality(self, params: Params, dims: Mapping[str, int],
                              modality: str) -> Optional[Params]:
    """Folds the modality's constant row into the first remaining modality's
    factor weights (elementwise per rank and output unit)."""
    order = modality_order(dims)
    rest = [m for m in order if m != modality]
    if not rest:
      return None
    constant = np.asarray(params[f"{modality}_factor_weight"])[:, -1:, :]
    name = f"{rest[0]}_factor_weight"
    return {**params, name: np.asarray(params[name]) * constant}
