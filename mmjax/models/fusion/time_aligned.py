"""Time-aligned (frame-level) fusion: streams side by side, step by step."""

from typing import Mapping, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models.fusion.attention_base import AttentionFusionBlock
from mmjax.models.fusion.base import (FusionOutput, Params, TokenTimes,
                                      modality_order)
from mmjax.models.layers.masking import masked_mean, valid_tokens
from mmjax.models.layers.attention import (AddPositionalEmbedding,
                                           TransformerEncoder)
from mmjax.models.registries import FUSION

Array = jnp.ndarray


def uniform_times(num_tokens: int) -> np.ndarray:
  """float64 `[num_tokens]`: token centres spread evenly over [0, 1], the
  times assumed for a modality without `token_times` (every stream covers
  the same span)."""
  return (np.arange(num_tokens) + 0.5) / num_tokens


def window_assignment(grid: np.ndarray, times: np.ndarray) -> np.ndarray:
  """float32 `[len(grid), len(times)]` 0/1: which tokens pool into each step.

  Each token joins the grid step nearest in time (the earlier one on a tie);
  a step that no token joins takes the token nearest to it, so a stream
  sampled more coarsely than the grid repeats its tokens rather than leaving
  holes.

  Args:
    grid: float `[steps]`, the steps' times (seconds), increasing.
    times: float `[tokens]`, the tokens' times (seconds).
  """
  distance = np.abs(np.asarray(grid, np.float64)[:, None]
                    - np.asarray(times, np.float64)[None, :])
  assignment = np.zeros(distance.shape, np.float32)
  assignment[distance.argmin(axis=0), np.arange(distance.shape[1])] = 1.0
  empty = assignment.sum(axis=1) == 0
  assignment[np.flatnonzero(empty), distance[empty].argmin(axis=1)] = 1.0
  return assignment


def time_grid(times: Mapping[str, np.ndarray], step_seconds: float
              ) -> np.ndarray:
  """float64 `[K]`: centres of steps of `step_seconds` from 0 s, enough to
  hold every token time (K = floor(last time / step) + 1).

  Raises:
    ValueError: without any token times.
  """
  if not times:
    raise ValueError(f"time_aligned fusion: step_seconds={step_seconds} "
                     "needs the encoders' token_times; none has them")
  end = max(float(np.max(t)) for t in times.values())
  return (np.arange(int(end // step_seconds) + 1) + 0.5) * step_seconds


@FUSION.register("time_aligned")
class TimeAlignedFusion(AttentionFusionBlock):
  """Frame-level fusion: per moment, every stream's tokens side by side.

  The grid is the time axis of the modality with the fewest tokens (or
  `reference`), or with `step_seconds` > 0 steps of that many seconds from
  0 s to the last token (`time_grid`; e.g. the length of a spoken word, so
  that one step holds all of it). Each modality's valid tokens are
  projected to `dim` and averaged over the grid step nearest in time
  (`window_assignment`, from the encoders' `token_times`; without times a
  stream's tokens are spread evenly over the span of the others). The
  per-step vectors of all modalities are concatenated, projected to `dim`,
  given positions (`positional_embedding`: "time" uses the grid's seconds)
  and a Transformer encoder runs over the steps; the embedding is the mean
  over the valid steps. A modality without a valid token at a step (padding,
  or missing in the example) contributes zeros to that step's
  concatenation; a step is valid when any modality has a token there.

  This is the frame-level concatenation of audio-visual speech models
  (AV-HuBERT, Shi et al. 2022, "Learning Audio-Visual Speech Representation
  by Masked Multimodal Cluster Prediction", which concatenates audio and lip
  features per video frame before a Transformer) and of synchronisation
  networks that compare the two streams window by window (SyncNet, Chung &
  Zisserman 2016, "Out of Time: Automated Lip Sync in the Wild"). Unlike
  attention fusion it needs no learned alignment: which moments correspond
  is given by the token times, and the per-step MLPs compare what each
  stream holds at that moment.

  Shapes: tokens `{m: [batch, T_m, dim_m]}` -> steps `[batch, K, dim]`
  (K = T of the grid modality, or the `time_grid` steps) -> embedding
  `[batch, dim]`. Sown:
  `fused_embedding` `[batch, dim]` and `step_mask` bool `[batch, K]`.

  A modality missing in an example adds zeros to its slot of every step and
  no valid step: nothing of it (tokens or parameters) reaches the result.
  This is not the block without the modality, whose grid and time span may
  differ (they follow the modalities' token counts and times, not presence).

  Attributes (beside `AttentionFusionBlock`'s):
    num_layers: Transformer layers over the steps.
    positional_embedding: "learned", "sinusoidal" or "time" (the grid's
      seconds, `time_positional_embedding`).
    reference: the modality whose token times are the grid; "" picks the
      one with the fewest tokens (the first in `modality_order` on a tie).
    step_seconds: > 0: a grid of steps of this length instead (needs
      `token_times`).

  Raises:
    ValueError: for a `reference` that is not among the modalities, or
      `step_seconds` > 0 without token times.
  """
  reference: str = ""
  step_seconds: float = 0.0

  def grid_modality(self, tokens: Mapping[str, Array]) -> str:
    """The modality whose token times define the grid."""
    order = modality_order(tokens)
    if not self.reference:
      return min(order, key=lambda m: tokens[m].shape[1])
    if self.reference not in tokens:
      raise ValueError(f"time_aligned fusion: reference={self.reference!r} "
                       f"is not a modality of this model {list(order)}")
    return self.reference

  def fuse(self, tokens: Mapping[str, Array], token_masks: Mapping[str, Array],
           present: Mapping[str, Array], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    times = dict(token_times or {})
    if self.step_seconds > 0:
      grid_times = grid = time_grid(times, self.step_seconds)
    else:
      grid_name = self.grid_modality(tokens)
      grid = _times(times, grid_name, tokens)
      grid_times = times.get(grid_name)
    steps, has_step = [], []
    for m in modality_order(tokens):
      x, valid = valid_tokens(tokens[m], token_masks[m], present[m])
      x = nn.Dense(self.dim, name=f"{m}_projection")(x)
      pooled, has = _pool_to_grid(x, valid,
                                  window_assignment(grid, _times(times, m,
                                                                 tokens)))
      steps.append(pooled)
      has_step.append(has)
    step_mask = jnp.stack(has_step, axis=0).any(axis=0)
    h = nn.Dense(self.dim, name="fuse")(jnp.concatenate(steps, axis=-1))
    h = AddPositionalEmbedding(self.positional_embedding, name="position")(
        h, None if grid_times is None else np.asarray(grid_times))
    h = TransformerEncoder(
        self.num_layers, self.num_heads, self.mlp_dim, self.dropout_rate,
        attention_implementation=self.attention_implementation,
        remat=self.remat, name="encoder")(h, step_mask, train=train)
    embedding = masked_mean(h, step_mask)
    self.sow("intermediates", "step_mask", step_mask)
    return FusionOutput(embedding=embedding)

  def params_without_modality(self, params: Params, dims: Mapping[str, int],
                              modality: str) -> Optional[Params]:
    """None: the grid, and the times given to modalities without their own,
    depend on which modalities the model has (see the class docstring)."""
    return None


def _times(times: Mapping[str, np.ndarray], modality: str,
           tokens: Mapping[str, Array]) -> np.ndarray:
  """A modality's token times, or `uniform_times` scaled to the span of the
  modalities that have times (to [0, 1] when none has)."""
  if modality in times:
    return np.asarray(times[modality], np.float64)
  span = max((float(np.max(t)) + float(np.min(t)) for t in times.values()),
             default=1.0)
  return uniform_times(tokens[modality].shape[1]) * span


def _pool_to_grid(x: Array, valid: Array,
                  assignment: np.ndarray) -> Tuple[Array, Array]:
  """Masked mean of `x` `[B, T, D]` over each step's tokens.

  Returns:
    (float `[B, K, D]`, zeros at steps without a valid token; bool `[B, K]`).
  """
  weights = jnp.asarray(assignment)[None] * valid[:, None, :].astype(x.dtype)
  count = weights.sum(axis=-1, keepdims=True)
  pooled = jnp.einsum("bkt,btd->bkd", weights, x) / jnp.maximum(count, 1.0)
  return pooled, count[..., 0] > 0

