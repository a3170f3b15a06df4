"""The fusion-block interface: `FusionBlock`, which every block subclasses.

A block author writes one method, `fuse`; the base's `__call__` is what the
model calls, checks the inputs and the output, and sows the fused embedding:

    @FUSION.register("my_block")
    class MyBlock(FusionBlock):
      dim: int = 64                         # attributes = config keys

      def fuse(self, tokens, token_masks, present, *, token_times, train):
        ...                                 # Flax layers inline, as in @compact
        return FusionOutput(embedding=...)

    block = FUSION.get(name)(num_classes=C, **attributes)
    out = block(tokens, token_masks, present, token_times=..., train=...)

Arguments, as `mmjax.models.multimodal.MultimodalModel` passes them:
- `tokens`: `{modality: float [batch, tokens_m, dim_m]}`; widths and token
  counts differ between modalities, a block projects.
- `token_masks`: `{modality: bool [batch, tokens_m]}`, True for real tokens,
  False for padding.
- `present`: `{modality: float32 [batch]}`, 1.0 where the modality is present
  in an example, 0.0 where it is missing.
- `token_times`: None, or `{modality: float32 [tokens_m]}` for the modalities
  whose encoder has a time axis (`token_times` method of video and audio
  encoders): each token's time in seconds from the start of the clip window,
  the same for every example. Attention blocks use it for time-aligned
  positional encodings (`positional_embedding="time"`); others ignore it.

A token is *valid* where its token mask is True and its modality is present.
Blocks read tokens only through `mmjax.models.layers.masking.valid_tokens`,
so that no content of padding or of a missing modality (even NaN) reaches
the output or the gradients, and leave a missing modality out of the result
(the contract tests in `tests/models/test_fusion_contract.py` check both on
every registered block, through the model).

Blocks also `sow` into "intermediates" what analyses need (attention
weights, gates, modality weights); the base sows `fused_embedding`.
"""

from typing import ClassVar, Dict, Mapping, Optional, Tuple

import flax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray
# `{modality: float32 [tokens_m]}` seconds, or None (see the module docstring).
TokenTimes = Optional[Mapping[str, np.ndarray]]
Params = Mapping[str, object]


@flax.struct.dataclass
class FusionOutput:
  """What a fusion block returns.

  Attributes:
    embedding: float32 `[batch, dim]`, the fused representation. The model's
      classifier head maps it to logits unless `logits` is set.
    logits: float32 `[batch, num_classes]` or None. Set by decision-level
      blocks, whose decision is the prediction (no head is applied).
    modality_logits: `{modality: float32 [batch, num_classes]}` or None: the
      per-modality predictions of decision-level blocks.
  """
  embedding: Array
  logits: Optional[Array] = None
  modality_logits: Optional[Dict[str, Array]] = None


def modality_order(tokens: Mapping[str, Array]) -> Tuple[str, ...]:
  """The fixed order in which blocks visit modalities (sorted names)."""
  return tuple(sorted(tokens))


class FusionBlock(nn.Module):
  """Base of every fusion block: subclasses implement `fuse`.

  Attributes:
    num_classes: number of classes, set by the model (decision-level blocks
      classify; the others leave the head to the model).

  Class attributes a block may set:
    modality_indexed_params: names of the block's own parameters whose
      leading axis is indexed by modality (in `modality_order`), e.g. one
      weight logit per modality; `params_without_modality` slices them.

  A block may override the classmethod `tiny()`: the attribute values of a
  small instance, which the contract tests use (compilation is most of
  their time on a CPU).
  """
  num_classes: int

  modality_indexed_params: ClassVar[Tuple[str, ...]] = ()

  @classmethod
  def tiny(cls) -> Dict[str, object]:
    """`{attribute: value}` of a small instance for tests (default: none)."""
    return {}

  @nn.compact
  def __call__(self, tokens: Mapping[str, Array],
               token_masks: Mapping[str, Array],
               present: Mapping[str, Array], *, train: bool,
               token_times: TokenTimes = None) -> FusionOutput:
    """Checks the inputs, runs `fuse`, checks and sows its output.

    Raises:
      ValueError: naming the block and the modality when the inputs
        disagree (keys, batch, token counts), or when `fuse` returns
        something other than the documented `FusionOutput`.
    """
    batch = self._check_inputs(tokens, token_masks, present, token_times)
    out = self.fuse(tokens, token_masks, present, token_times=token_times,
                    train=train)
    self._check_output(out, tokens, batch)
    self.sow("intermediates", "fused_embedding", out.embedding)
    return out

  def fuse(self, tokens: Mapping[str, Array], token_masks: Mapping[str, Array],
           present: Mapping[str, Array], *, token_times: TokenTimes,
           train: bool) -> FusionOutput:
    """The fusion; Flax layers may be defined inline (it runs inside the
    compact `__call__`). See the module docstring for the arguments."""
    raise NotImplementedError(f"{type(self).__name__} must implement fuse()")

  def params_without_modality(self, params: Params, dims: Mapping[str, int],
                              modality: str) -> Optional[Params]:
    """The block's parameters for the same block applied without `modality`.

    A block leaves a missing modality out of its result exactly when, for an
    example where `modality` is absent, its output equals the output of these
    parameters applied to the inputs with `modality` removed. The default
    slices `modality_indexed_params` and keeps everything else (parameters
    of the removed modality are then unused); blocks whose parameter shapes
    depend on the set of modalities override this.

    Args:
      params: this block's "params" collection.
      dims: `{modality: dim_m}`, the token widths of every modality the
        parameters were made for.
      modality: the one to remove.

    Returns:
      The parameters, or None where no such parameters exist (the block
      then states in its docstring what it does with a missing modality).
    """
    index = modality_order(dims).index(modality)
    out = dict(params)
    for name in set(self.modality_indexed_params) & set(params):
      out[name] = np.delete(np.asarray(params[name]), index, axis=0)
    return out

  def _check_inputs(self, tokens, token_masks, present, token_times) -> int:
    where = f"fusion block {type(self).__name__}"
    if not tokens:
      raise ValueError(f"{where}: no modality in the inputs")
    for name, other in (("token_masks", token_masks), ("present", present)):
      if set(other) != set(tokens):
        raise ValueError(f"{where}: {name} has modalities {sorted(other)}, "
                         f"tokens have {sorted(tokens)}")
    batch = next(iter(tokens.values())).shape[0]
    for m in modality_order(tokens):
      t = tokens[m]
      if t.ndim != 3 or t.shape[0] != batch:
        raise ValueError(f"{where}: tokens[{m!r}] has shape {t.shape}; "
                         f"expected [batch={batch}, tokens, dim]")
      if token_masks[m].shape != t.shape[:2]:
        raise ValueError(f"{where}: token_masks[{m!r}] has shape "
                         f"{token_masks[m].shape}; expected {t.shape[:2]}")
      if present[m].shape != (batch,):
        raise ValueError(f"{where}: present[{m!r}] has shape "
                         f"{present[m].shape}; expected ({batch},)")
      times = (token_times or {}).get(m)
      if times is not None and np.shape(times) != (t.shape[1],):
        raise ValueError(f"{where}: token_times[{m!r}] has shape "
                         f"{np.shape(times)}; expected ({t.shape[1]},)")
    return batch

  def _check_output(self, out, tokens, batch) -> None:
    where = f"fusion block {type(self).__name__}.fuse"
    if not isinstance(out, FusionOutput):
      raise ValueError(f"{where} returned {type(out).__name__}; expected a "
                       "FusionOutput")
    if out.embedding.ndim != 2 or out.embedding.shape[0] != batch:
      raise ValueError(f"{where}: embedding has shape {out.embedding.shape}; "
                       f"expected [batch={batch}, dim]")
    expected = (batch, self.num_classes)
    if out.logits is not None and out.logits.shape != expected:
      raise ValueError(f"{where}: logits have shape {out.logits.shape}; "
                       f"expected {expected}")
    for m, logits in (out.modality_logits or {}).items():
      if m not in tokens or logits.shape != expected:
        raise ValueError(f"{where}: modality_logits[{m!r}] has shape "
                         f"{logits.shape}; expected a modality of the inputs "
                         f"and {expected}")
